"""Typed verdicts and the parser that reads Qwen3Guard-Gen's output into them."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from guard_client._errors import GuardParseError
from guard_client._labels import CATEGORIES_BY_MODE, Category, GuardMode, Safety, Strictness


class FailurePolicy(StrEnum):
    """What a check returns when the guard cannot answer (server down, unparseable output)."""

    RAISE = "raise"  # raise the GuardError (the default)
    FAIL_CLOSED = "fail_closed"  # return an undecided verdict that is flagged
    FAIL_OPEN = "fail_open"  # return an undecided verdict that is not flagged (never reads as Safe)


class Scores(BaseModel):
    """Probabilities of the verdict word, from the verdict token's logprobs.

    A probability is None when that word's first token fell outside the returned top logprobs
    (it is then below the smallest probability returned). `verdict_mass` is the sum of the known
    three: near 1.0 for the real model, tiny for the random-weight stand-in.
    """

    model_config = ConfigDict(frozen=True)

    safe: float | None
    unsafe: float | None
    controversial: float | None

    @property
    def verdict_mass(self) -> float:
        return sum(p for p in (self.safe, self.unsafe, self.controversial) if p is not None)

    def unsafe_score(self, strictness: Strictness = Strictness.STRICT) -> float:
        """P(flagged) for thresholding: Unsafe, plus Controversial when strict."""
        unsafe = self.unsafe or 0.0
        return unsafe + (self.controversial or 0.0) if strictness is Strictness.STRICT else unsafe


class Verdict(BaseModel):
    """One guard decision. `safety` is None only when the guard could not decide (see `error`)."""

    model_config = ConfigDict(frozen=True)

    mode: GuardMode
    safety: Safety | None
    categories: list[Category] = Field(default_factory=list)
    refusal: bool | None = None
    raw: str = ""
    scores: Scores | None = None
    error: str | None = None
    policy: FailurePolicy | None = Field(default=None, description="set when the verdict comes from the failure policy")

    @property
    def decided(self) -> bool:
        return self.safety is not None

    def flagged(self, strictness: Strictness | str = Strictness.STRICT) -> bool:
        """Whether to block. Strict (default) counts Controversial as unsafe; loose as safe.

        An undecided verdict is flagged unless the caller chose to fail open.
        """
        if self.safety is None:
            return self.policy is not FailurePolicy.FAIL_OPEN
        if self.safety is Safety.UNSAFE:
            return True
        return self.safety is Safety.CONTROVERSIAL and Strictness(strictness) is Strictness.STRICT

    @classmethod
    def undecided(cls, mode: GuardMode, error: str, policy: FailurePolicy, raw: str = "") -> Verdict:
        return cls(mode=mode, safety=None, raw=raw, error=error, policy=policy)

    def to_openai_moderation(self) -> dict[str, Any]:
        from guard_client._moderation import to_openai_moderation

        return to_openai_moderation(self)


_KEY_LINE = re.compile(r"^\s*(safety|categories|refusal)\s*:\s*(.*?)\s*$", re.IGNORECASE | re.MULTILINE)
_SAFETY = {s.value.lower(): s for s in Safety}
_CATEGORY = {c.value.lower(): c for c in Category}
_REFUSAL = {"yes": True, "no": False}


def _single(values: list[str], key: str, raw: str) -> str | None:
    distinct = {v.lower() for v in values}
    if len(distinct) > 1:
        raise GuardParseError(f"conflicting '{key}:' lines {sorted(distinct)}", raw)
    return values[0] if values else None


def parse_verdict(text: str, mode: GuardMode | str) -> Verdict:
    """Parse the model's raw output by key into a `Verdict`.

    Tolerates surrounding whitespace, extra lines, reordered lines and lists of categories.
    A missing or invalid `Safety:` line, an unknown category, or a category the mode does not
    allow raises `GuardParseError`: output that cannot be read is never taken as Safe.
    """
    mode = GuardMode(mode)
    found: dict[str, list[str]] = {"safety": [], "categories": [], "refusal": []}
    for match in _KEY_LINE.finditer(text):
        found[match.group(1).lower()].append(match.group(2))

    safety_text = _single(found["safety"], "Safety", text)
    if safety_text is None:
        raise GuardParseError("no 'Safety:' line", text)
    safety = _SAFETY.get(safety_text.lower())
    if safety is None:
        raise GuardParseError(f"unknown safety value {safety_text!r}", text)

    categories: list[Category] = []
    category_text = _single(found["categories"], "Categories", text)
    if category_text is not None:
        labels = [label.strip() for label in category_text.split(",")]
        if [label.lower() for label in labels] != ["none"]:
            allowed = CATEGORIES_BY_MODE[mode]
            for label in labels:
                category = _CATEGORY.get(label.lower())
                if category is None:
                    raise GuardParseError(f"unknown category {label!r}", text)
                if category not in allowed:
                    raise GuardParseError(f"category {label!r} does not apply to {mode.value} moderation", text)
                if category not in categories:
                    categories.append(category)

    refusal: bool | None = None
    refusal_text = _single(found["refusal"], "Refusal", text)
    if mode is GuardMode.RESPONSE and refusal_text is not None:
        if refusal_text.lower() not in _REFUSAL:
            raise GuardParseError(f"unknown refusal value {refusal_text!r}", text)
        refusal = _REFUSAL[refusal_text.lower()]

    return Verdict(mode=mode, safety=safety, categories=categories, refusal=refusal, raw=text)
