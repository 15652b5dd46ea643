"""Verdicts in the shape of OpenAI's `/v1/moderations` result: one typed model, built by one function.

Mapping from Qwen3Guard-Gen's labels to OpenAI's category keys (documented in the README):

| Qwen3Guard label              | OpenAI categories          |
|-------------------------------|----------------------------|
| Violent                       | violence                   |
| Non-violent Illegal Acts      | illicit                    |
| Sexual Content or Sexual Acts | sexual                     |
| Suicide & Self-Harm           | self-harm                  |
| Unethical Acts                | hate, harassment           |
| PII, Politically Sensitive Topics, Copyright Violation, Jailbreak | none (in the `qwen3guard` extension only) |

OpenAI's finer keys (`*/threatening`, `*/intent`, `sexual/minors`, ...) have no Qwen3Guard
counterpart and always read false/0. The mapping is the default policy's (`QWEN_TO_OPENAI` in `_labels`);
a custom policy's category maps onto the keys its `openai` field names, and onto none when it names none
(it then shows only in the `qwen3guard` extension's `labels`, beside the verdict's `flagged`).
"""

from __future__ import annotations

from typing import Any

from openai.types import Moderation
from pydantic import BaseModel, ConfigDict

from guard_client._guard_policy import DEFAULT_POLICY, GuardPolicy
from guard_client._labels import OPENAI_CATEGORIES, GuardMode, Strictness
from guard_client._verdict import FailurePolicy, Scores, Verdict


class Qwen3GuardModeration(BaseModel):
    """The `qwen3guard` extension on each result: what OpenAI's schema cannot carry."""

    model_config = ConfigDict(frozen=True)

    mode: GuardMode
    #: Safe / Unsafe / Controversial; None when the guard did not decide.
    severity: str | None
    labels: list[str]
    refusal: bool | None
    scores: Scores | None
    strictness: Strictness
    error: str | None = None
    error_type: str | None = None
    #: Set when the result comes from a failure policy (the guard did not decide).
    policy: FailurePolicy | None = None
    unmapped_labels: list[str] = []


class ModerationResult(Moderation):
    """One `results[]` item of `/v1/moderations`: OpenAI's `Moderation` plus the `qwen3guard` extension."""

    qwen3guard: Qwen3GuardModeration

    def to_wire(self) -> dict[str, Any]:
        """The JSON object as OpenAI's API sends it (slash keys such as `self-harm/intent`)."""
        return self.model_dump(mode="json", by_alias=True)


def to_openai_moderation(
    verdict: Verdict, strictness: Strictness | str = Strictness.STRICT, policy: GuardPolicy = DEFAULT_POLICY
) -> ModerationResult:
    """The moderation result for `verdict`: `flagged` and the categories follow `strictness`; each label
    maps onto the OpenAI keys `policy` gives it (the policy the verdict was checked under)."""
    strictness = Strictness(strictness)
    flagged = verdict.flagged(strictness)
    # A category's score is the probability that the text is flagged when the model named it;
    # without logprobs it is 1.0 for named categories.
    score = verdict.scores.unsafe_score(strictness) if verdict.scores else 1.0
    hit = {key for label in verdict.categories for key in _openai_keys(policy, label)} if flagged else set()
    return ModerationResult.model_validate(
        {
            "flagged": flagged,
            "categories": {key: key in hit for key in OPENAI_CATEGORIES},
            "category_scores": {key: (score if key in hit else 0.0) for key in OPENAI_CATEGORIES},
            "category_applied_input_types": {key: ["text"] for key in OPENAI_CATEGORIES},
            "qwen3guard": Qwen3GuardModeration(
                mode=verdict.mode,
                severity=verdict.safety.value if verdict.safety else None,
                labels=[str(c) for c in verdict.categories],
                refusal=verdict.refusal,
                scores=verdict.scores,
                strictness=strictness,
                error=verdict.error,
                error_type=verdict.error_type,
                policy=verdict.policy,
                unmapped_labels=verdict.unmapped_labels,
            ),
        }
    )


def _openai_keys(policy: GuardPolicy, label: str) -> tuple[str, ...]:
    category = policy.category(label)
    return category.openai if category is not None else ()
