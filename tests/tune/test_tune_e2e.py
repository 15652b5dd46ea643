"""An adapter written by `guard tune`, served by vLLM's multi-LoRA beside the base, gives the verdicts
transformers + peft give with it (greedy) on the held-out rows, through the client and the custom policy;
the tune evaluation scores what the server answered. The adapter is loaded into the session's LoRA server
(tiny stand-in) while it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from guard_client import VERDICT_PREFIX, GuardMode, GuardParseError, answer_max_tokens, parse_verdict
from guard_tune import TuneConfig, load_policy, read_labelled, split, tune
from guard_tune._evaluate import check_rows, compare, predicted_labels
from tests.tune.conftest import example_rows, write_jsonl

ADAPTER = "acme-tuned"

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory, policy_file: Path) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("tune")
    data = write_jsonl(root / "d.jsonl", example_rows(40))
    out = root / ADAPTER
    card = tune(TuneConfig(data=data, out=out, policy=policy_file, steps=6, batch=4, rank=8, evaluate=False))
    policy = load_policy(policy_file)
    _, held = split(read_labelled(data, policy).rows, 0.2, 0)
    return {"out": out, "card": card, "policy": policy, "held": held}


@pytest.fixture(scope="module")
def served(tuned: dict[str, Any], lora_url: str) -> str:
    """The session's LoRA server with the tuned adapter loaded while it runs (vLLM's runtime LoRA loading,
    which that server allows): the adapter did not exist when the server started."""
    body = {"lora_name": ADAPTER, "lora_path": str(tuned["out"])}
    reply = httpx.post(f"{lora_url}/v1/load_lora_adapter", json=body, timeout=120)
    assert reply.status_code == 200, reply.text
    return lora_url


def _peft_raw(tuned: dict[str, Any], tiny_base: str) -> list[str]:
    """transformers + peft, greedy: what the model writes after the client's prompt and its `Safety:`."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    base = AutoModelForCausalLM.from_pretrained(tiny_base, dtype=torch.bfloat16)
    model = PeftModel.from_pretrained(base, str(tuned["out"]))
    ends = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])  # the served generation config's
    # The client's own bound on an unconstrained answer with this policy: both sides stop at the same place.
    max_tokens = answer_max_tokens(tuned["policy"].policy, constrain=False)
    answers = []
    for row in tuned["held"]:
        ids = tokenizer(tuned["policy"].render(row.messages) + VERDICT_PREFIX, add_special_tokens=False)["input_ids"]
        out = model.generate(
            torch.tensor([ids]), max_new_tokens=max_tokens, do_sample=False, eos_token_id=ends, pad_token_id=ends[0]
        )
        answers.append(VERDICT_PREFIX + tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True))
    return answers


def _verdict(text: str, mode: GuardMode, policy: Any) -> tuple[str | None, list[str]]:
    try:
        verdict = parse_verdict(text, mode, policy=policy.policy)
    except GuardParseError:
        return None, []
    return (verdict.safety.value if verdict.safety else None), predicted_labels(verdict)


def test_vllm_serves_the_tuned_adapter_as_peft_computes_it(tuned: dict[str, Any], served: str, tiny_base: str) -> None:
    held, policy = tuned["held"], tuned["policy"]
    vllm = check_rows(served, ADAPTER, held, policy, constrain=False)
    reference = _peft_raw(tuned, tiny_base)
    for row, verdict, expected in zip(held, vllm, reference, strict=True):
        # The whole answer, token for token (also one that does not parse), and so the same verdict.
        assert verdict.raw == expected, row.row
        assert _verdict(verdict.raw, row.mode, policy) == _verdict(expected, row.mode, policy), row.row


def test_the_evaluation_scores_base_and_adapter_as_served(tuned: dict[str, Any], served: str) -> None:
    from guard_client import DEFAULT_MODEL

    held, policy = tuned["held"], tuned["policy"]
    report = compare(served, DEFAULT_MODEL, ADAPTER, held, policy)
    assert report["standin"] and "random" in report["warning"]
    assert [p["row"] for p in report["predictions"]] == [r.row for r in held]
    for side in ("base", "adapter"):
        scored = report[side]
        answers = [p[f"{side}_raw"] for p in report["predictions"]]
        right = sum(_verdict(a, r.mode, policy)[0] == r.safety.value for a, r in zip(answers, held, strict=True))
        assert scored["accuracy"] == pytest.approx(right / len(held))
        assert set(scored["per_category"]) == set(policy.categories)
        assert sum(sum(row.values()) for row in scored["severity_confusion"].values()) == len(held)
        # Constrained to the policy's grammar: every answer is a verdict with only the policy's labels.
        assert scored["decided"] == len(held)
        labels = {c for a, r in zip(answers, held, strict=True) for c in _verdict(a, r.mode, policy)[1]}
        assert labels <= set(policy.categories)
