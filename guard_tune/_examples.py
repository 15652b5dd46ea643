"""Training examples the way the server will see them: the client's own render of the prompt, the model's
own answer format as the target, and a loss on the answer tokens only.

`answer_loss` computes the language-model head only at the positions that predict an answer token. The
naive path (`model(..., labels=...)`) projects every position onto the 151,936-entry vocabulary; a guard
prompt is ~300 tokens and its answer ~10, so the head's matrix product and the cross-entropy shrink ~30x
(`make bench-tune` measures the step time of both).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from peft import PeftModel
from torch import nn

from guard_client import GuardMode
from guard_tune._data import LabelledRow
from guard_tune._policy import TunePolicy

IGNORE_INDEX = -100
#: The end-of-turn token the model ends its answer with; vLLM stops there.
END_OF_TURN = "<|im_end|>"


def answer_text(row: LabelledRow) -> str:
    """The model's own answer format for this row's labels, ending its turn."""
    lines = [f"Safety: {row.safety.value}", f"Categories: {', '.join(row.categories) or 'None'}"]
    if row.mode is GuardMode.RESPONSE:
        lines.append(f"Refusal: {'Yes' if row.refusal else 'No'}")
    return "\n".join(lines) + END_OF_TURN


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]


def build_example(row: LabelledRow, policy: TunePolicy, tokenizer: Any) -> Example:
    """Prompt and answer are tokenized apart: the server tokenizes the prompt alone, and the model then
    writes the answer's tokens after it, so these are the ids the adapter sees at serving time."""
    prompt = tokenizer(policy.render(row.messages), add_special_tokens=False)["input_ids"]
    answer = tokenizer(answer_text(row), add_special_tokens=False)["input_ids"]
    return Example(prompt + answer, [IGNORE_INDEX] * len(prompt) + answer)


class Collator:
    """Right-pads a batch; padded positions are masked out of attention and loss."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, batch: Sequence[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[i, :n] = torch.tensor(b["input_ids"])
            labels[i, :n] = torch.tensor(b["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def causal_lm(model: nn.Module) -> Any:
    """The transformers causal LM inside the wrappers (DDP under `accelerate launch`, PEFT); the LoRA layers
    live inside its modules, so calling its parts runs them."""
    inner: Any = getattr(model, "module", model)
    return inner.get_base_model() if isinstance(inner, PeftModel) else inner


def answer_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy over the answer tokens, the head applied only where a label is set."""
    lm = causal_lm(model)
    hidden = lm.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    targets = batch["labels"][:, 1:]
    where = targets != IGNORE_INDEX
    logits = lm.lm_head(hidden[:, :-1][where])
    return nn.functional.cross_entropy(logits.float(), targets[where])


def naive_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """transformers' own loss: full-vocabulary logits at every position (the reference and the baseline)."""
    return model(**batch).loss  # type: ignore[no-any-return]
