"""Pure builders of the requests a check sends to vLLM, and the verdict-token facts they need.

Public so that every consumer (benchmarks, load tests, a gateway) sends exactly what the client
sends instead of rebuilding bodies; the check flows in `_flows.py` are their main user.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from guard_client import _grammar as grammar
from guard_client._constants import MAX_TOKENS, TOP_LOGPROBS
from guard_client._guard_policy import GuardPolicy
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
        return {
            None: grammar.VERDICT_PREFIX,
            **{safety: f"{grammar.VERDICT_PREFIX} {safety.value}" for safety in Safety},
        }

    @classmethod
    def from_tokenizations(cls, tokens: Mapping[Safety | None, Sequence[int]]) -> VerdictTokens:
        """Read the ids from the tokenizations of `probe_texts()`; ValueError when they cannot tell the words apart."""
        head = list(tokens[None])
        ids: dict[Safety, int] = {}
        for safety in Safety:
            full = list(tokens[safety])
            if full[: len(head)] != head or len(full) <= len(head):
                raise ValueError(
                    f"the server's tokenizer does not split '{grammar.VERDICT_PREFIX} {safety.value}' as expected"
                )
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
    max_categories: int = grammar.MAX_CATEGORIES,
    stream: bool = False,
) -> dict[str, Any]:
    """The `/v1/chat/completions` body of a full-generation check with the published policy: greedy, a
    small max_tokens, and the verdict grammar when `constrain`. The server applies the model's template
    to the messages (a custom policy's check is a `completion_request` instead)."""
    if not guard_input.policy.is_default:
        raise ValueError(
            f"the server's chat template states the model's own policy, not {guard_input.policy.name!r}: "
            "send a completion_request"
        )
    body: dict[str, Any] = {
        "model": model,
        "messages": guard_input.message_list(),
        "temperature": 0,
        "max_tokens": answer_max_tokens(guard_input.policy, constrain=constrain),
    }
    if constrain:
        body["structured_outputs"] = {"regex": grammar.verdict_regex(guard_input.mode, max_categories=max_categories)}
    if scores:
        body |= {"logprobs": True, "top_logprobs": TOP_LOGPROBS, "return_tokens_as_token_ids": True}
    if stream:
        body["stream"] = True
    return body


def completion_request(
    guard_input: GuardInput,
    model: str,
    *,
    constrain: bool = False,
    scores: bool = False,
    max_categories: int = grammar.MAX_CATEGORIES,
) -> dict[str, Any]:
    """The `/v1/completions` body of a full-generation check with a custom policy.

    The server's chat template states the model's own policy, so a custom policy's prompt is the
    client's render, sent as it is (what an adapter was trained on, byte for byte), followed by
    'Safety:': the answer continues after it (its first token is the verdict word, which `scores`
    reads), under `continuation_regex` when `constrain`. The answer is 'Safety:' + the completion.
    """
    policy = guard_input.policy
    body: dict[str, Any] = {
        "model": model,
        "prompt": guard_input.prompt + grammar.VERDICT_PREFIX,
        "temperature": 0,
        "max_tokens": answer_max_tokens(policy, constrain=constrain),
    }
    if constrain:
        regex = grammar.continuation_regex(guard_input.mode, max_categories=max_categories, policy=policy)
        body["structured_outputs"] = {"regex": regex}
    if scores:
        body |= {"logprobs": TOP_LOGPROBS, "return_tokens_as_token_ids": True}
    return body


def answer_max_tokens(policy: GuardPolicy, *, constrain: bool) -> int:
    """The `max_tokens` of a full-generation check: the grammar's bound when constrained; else MAX_TOKENS
    for the published policy (measured on its labels), and the grammar's bound for another, whose names'
    tokens nobody measured."""
    bound = grammar.max_tokens_constrained(policy)
    if constrain:
        return bound
    return MAX_TOKENS if policy.is_default else max(MAX_TOKENS, bound)


def verdict_request(guard_input: GuardInput, model: str, tokens: VerdictTokens) -> dict[str, Any]:
    """The verdict-first `/v1/completions` body: the rendered prompt plus 'Safety:', one token, greedy
    among the three verdict words (the model's own preference between them), with their logprobs."""
    return {
        "model": model,
        "prompt": guard_input.prompt + grammar.VERDICT_PREFIX,
        "max_tokens": 1,
        "temperature": 0,
        "logprobs": TOP_LOGPROBS,
        "allowed_token_ids": sorted(tokens.ids.values()),
        "return_tokens_as_token_ids": True,
    }


def details_request(
    guard_input: GuardInput, model: str, safety: Safety, *, max_categories: int = grammar.MAX_CATEGORIES
) -> dict[str, Any]:
    """The verdict-first follow-up: continue the same (cached) prompt after the decided verdict word,
    under the grammar of the categories (and refusal), so the details always parse and agree with it."""
    return {
        "model": model,
        "prompt": guard_input.prompt + grammar.details_prefix(safety),
        "max_tokens": grammar.max_tokens_details(guard_input.policy),
        "temperature": 0,
        "structured_outputs": {
            "regex": grammar.details_regex(
                guard_input.mode, safety, max_categories=max_categories, policy=guard_input.policy
            )
        },
    }
