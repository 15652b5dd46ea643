"""Pure builders of the requests a check sends to vLLM, and the verdict-token facts they need.

Public so that every consumer (benchmarks, load tests, a gateway) sends exactly what the client
sends instead of rebuilding bodies; the check flows in `_flows.py` are their main user.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from guard_client._constants import MAX_TOKENS, TOP_LOGPROBS
from guard_client._grammar import (
    MAX_CATEGORIES,
    MAX_TOKENS_CONSTRAINED,
    MAX_TOKENS_DETAILS,
    VERDICT_PREFIX,
    details_prefix,
    details_regex,
    verdict_regex,
)
from guard_client._input import GuardInput
from guard_client._labels import Safety


@dataclass(frozen=True)
class VerdictTokens:
    """The first sub-token id of each verdict word after 'Safety:', as the server's tokenizer splits it."""

    ids: Mapping[Safety, int]

    @property
    def by_id(self) -> dict[int, Safety]:
        return {token: safety for safety, token in self.ids.items()}

    @staticmethod
    def probe_texts() -> dict[Safety | None, str]:
        """What to tokenize (without special tokens) to find them: the prefix (key None) and each answer start."""
        return {None: VERDICT_PREFIX, **{safety: f"{VERDICT_PREFIX} {safety.value}" for safety in Safety}}

    @classmethod
    def from_tokenizations(cls, tokens: Mapping[Safety | None, Sequence[int]]) -> VerdictTokens:
        """Read the ids from the tokenizations of `probe_texts()`; ValueError when they cannot tell the words apart."""
        head = list(tokens[None])
        ids: dict[Safety, int] = {}
        for safety in Safety:
            full = list(tokens[safety])
            if full[: len(head)] != head or len(full) <= len(head):
                raise ValueError(f"the server's tokenizer does not split '{VERDICT_PREFIX} {safety.value}' as expected")
            ids[safety] = int(full[len(head)])
        if len(set(ids.values())) != len(Safety):
            raise ValueError("the verdict words share their first token; verdict-first scoring cannot tell them apart")
        return cls(ids)


def tokenize_request(model: str, text: str) -> dict[str, Any]:
    """vLLM's `/tokenize` body for raw text (no special tokens added)."""
    return {"model": model, "prompt": text, "add_special_tokens": False}


def chat_request(
    guard_input: GuardInput,
    model: str,
    *,
    constrain: bool = False,
    scores: bool = False,
    max_categories: int = MAX_CATEGORIES,
    stream: bool = False,
) -> dict[str, Any]:
    """The `/v1/chat/completions` body of a full-generation check: greedy, a small max_tokens, and the
    verdict grammar when `constrain`. The server applies the model's template to the messages."""
    body: dict[str, Any] = {
        "model": model,
        "messages": guard_input.message_list(),
        "temperature": 0,
        "max_tokens": MAX_TOKENS_CONSTRAINED if constrain else MAX_TOKENS,
    }
    if constrain:
        body["structured_outputs"] = {"regex": verdict_regex(guard_input.mode, max_categories=max_categories)}
    if scores:
        body |= {"logprobs": True, "top_logprobs": TOP_LOGPROBS, "return_tokens_as_token_ids": True}
    if stream:
        body["stream"] = True
    return body


def verdict_request(guard_input: GuardInput, model: str, tokens: VerdictTokens) -> dict[str, Any]:
    """The verdict-first `/v1/completions` body: the rendered prompt plus 'Safety:', one token, greedy
    among the three verdict words (the model's own preference between them), with their logprobs."""
    return {
        "model": model,
        "prompt": guard_input.prompt + VERDICT_PREFIX,
        "max_tokens": 1,
        "temperature": 0,
        "logprobs": TOP_LOGPROBS,
        "allowed_token_ids": sorted(tokens.ids.values()),
        "return_tokens_as_token_ids": True,
    }


def details_request(
    guard_input: GuardInput, model: str, safety: Safety, *, max_categories: int = MAX_CATEGORIES
) -> dict[str, Any]:
    """The verdict-first follow-up: continue the same (cached) prompt after the decided verdict word,
    under the grammar of the categories (and refusal), so the details always parse and agree with it."""
    return {
        "model": model,
        "prompt": guard_input.prompt + details_prefix(safety),
        "max_tokens": MAX_TOKENS_DETAILS,
        "temperature": 0,
        "structured_outputs": {"regex": details_regex(guard_input.mode, safety, max_categories=max_categories)},
    }
