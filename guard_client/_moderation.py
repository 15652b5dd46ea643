"""Verdicts in the shape of OpenAI's `/v1/moderations` `results[]` item.

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
counterpart and always read false/0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from guard_client._labels import Category, Strictness

if TYPE_CHECKING:
    from guard_client._verdict import Verdict

OPENAI_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
QWEN_TO_OPENAI: dict[Category, tuple[str, ...]] = {
    Category.VIOLENT: ("violence",),
    Category.NON_VIOLENT_ILLEGAL_ACTS: ("illicit",),
    Category.SEXUAL_CONTENT: ("sexual",),
    Category.SUICIDE_SELF_HARM: ("self-harm",),
    Category.UNETHICAL_ACTS: ("hate", "harassment"),
    Category.PII: (),
    Category.POLITICALLY_SENSITIVE: (),
    Category.COPYRIGHT_VIOLATION: (),
    Category.JAILBREAK: (),
}


def to_openai_moderation(verdict: Verdict, strictness: Strictness = Strictness.STRICT) -> dict[str, Any]:
    flagged = verdict.flagged(strictness)
    # A category's score is the probability that the text is flagged when the model named it;
    # without logprobs it is 1.0 for named categories.
    score = verdict.scores.unsafe_score(strictness) if verdict.scores else 1.0
    hit = {key for category in verdict.categories for key in QWEN_TO_OPENAI[category]} if flagged else set()
    return {
        "flagged": flagged,
        "categories": {key: key in hit for key in OPENAI_CATEGORIES},
        "category_scores": {key: (score if key in hit else 0.0) for key in OPENAI_CATEGORIES},
        "category_applied_input_types": {key: ["text"] for key in OPENAI_CATEGORIES},
        "qwen3guard": {
            "mode": verdict.mode.value,
            "severity": verdict.safety.value if verdict.safety else None,
            "labels": [c.value for c in verdict.categories],
            "refusal": verdict.refusal,
            "scores": verdict.scores.model_dump() if verdict.scores else None,
            "error": verdict.error,
        },
    }
