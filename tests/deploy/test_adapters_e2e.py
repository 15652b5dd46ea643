"""A PEFT adapter served by vLLM's multi-LoRA beside the base guard answers what transformers + peft answer
with the same adapter, token for token, and not what the base model answers (the LoRA server of tests/conftest.py
serves its random test adapter on the tiny stand-in)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from guard_client import DEFAULT_MODEL, prepare_input
from tests.conftest import TEST_ADAPTER

#: Greedy tokens compared per prompt: a whole verdict is 9-13 tokens.
ANSWER_TOKENS = 12
CONVERSATIONS = [
    [{"role": "user", "content": "Which broker should I buy shares with?"}],
    [{"role": "user", "content": "Is the ACME phone better than ours?"}, {"role": "assistant", "content": "Yes."}],
]


def _vllm_tokens(url: str, model: str, prompt_ids: list[int]) -> list[int]:
    body: dict[str, Any] = {
        "model": model,
        "prompt": prompt_ids,
        "max_tokens": ANSWER_TOKENS,
        "temperature": 0,
        "ignore_eos": True,  # the same number of tokens as the reference's plain greedy loop
        "return_token_ids": True,
    }
    reply = httpx.post(f"{url}/v1/completions", json=body, timeout=120)
    reply.raise_for_status()
    return list(reply.json()["choices"][0]["token_ids"])


@pytest.fixture(scope="module")
def reference() -> Any:
    """transformers + peft with the session's adapter: a plain greedy loop over the logits."""
    torch = pytest.importorskip("torch")
    peft = pytest.importorskip("peft")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from deploy.standin import build_standin

    base = build_standin("tiny")
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.bfloat16)
    return torch, tokenizer, model, peft


def _greedy(torch: Any, model: Any, prompt_ids: list[int]) -> list[int]:
    ids = torch.tensor([prompt_ids])
    out: list[int] = []
    with torch.no_grad():
        for _ in range(ANSWER_TOKENS):
            token = int(model(ids).logits[0, -1].argmax())
            out.append(token)
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    return out


def test_vllm_serves_the_adapter_as_peft_computes_it(lora_url: str, test_adapter_dir: Path, reference: Any) -> None:
    torch, tokenizer, model, peft = reference
    prompts = [
        tokenizer(prepare_input(messages).prompt, add_special_tokens=False)["input_ids"] for messages in CONVERSATIONS
    ]
    base_answers = [_greedy(torch, model, ids) for ids in prompts]
    adapted = peft.PeftModel.from_pretrained(model, str(test_adapter_dir))
    adapter_answers = [_greedy(torch, adapted, ids) for ids in prompts]

    served = httpx.get(f"{lora_url}/v1/models", timeout=10).json()["data"]
    lora = next(entry for entry in served if entry["id"] == TEST_ADAPTER)
    assert lora["parent"] == DEFAULT_MODEL, "vLLM lists the adapter as a child of the base guard"
    for ids, expected_base, expected_adapter in zip(prompts, base_answers, adapter_answers, strict=True):
        assert _vllm_tokens(lora_url, TEST_ADAPTER, ids) == expected_adapter
        assert _vllm_tokens(lora_url, DEFAULT_MODEL, ids) == expected_base
        assert expected_adapter != expected_base, "the random adapter must change the answer, or this proves nothing"
