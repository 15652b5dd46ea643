"""Typed verdicts and the parser that reads Qwen3Guard-Gen's output into them."""

from __future__ import annotations

import re
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

from guard_client._errors import GuardError, GuardParseError
from guard_client._guard_policy import DEFAULT_POLICY, GuardPolicy
from guard_client._labels import Category, GuardMode, Safety, Strictness
from guard_client._locate import Location

#: A category a verdict names: the `Category` enum for the model's own names, the policy's name otherwise.
#: Both are `str`s; `str(label)` is the label as written.
CategoryLabel: TypeAlias = Annotated[Category | str, Field(union_mode="left_to_right")]


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
    #: The policy's labels the answer names (`Category` members for the model's own names).
    categories: list[CategoryLabel] = Field(default_factory=list)
    refusal: bool | None = None
    raw: str = ""
    scores: Scores | None = None
    error: str | None = None
    #: The `GuardError` subclass behind `error` (e.g. "GuardTimeoutError"): what kind of failure it was.
    error_type: str | None = None
    policy: FailurePolicy | None = Field(default=None, description="set when the verdict comes from the failure policy")
    #: Labels in the answer that name no category of the policy for this mode (unknown, or prompt-only in
    #: response mode).
    unmapped_labels: list[str] = Field(default_factory=list)
    #: What the parser could not read beside a valid `Safety:` line; the verdict stands regardless.
    warnings: list[str] = Field(default_factory=list)
    #: Where in the checked text a flagged verdict comes from (`locate=True`).
    location: Location | None = None

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
    def undecided(
        cls,
        mode: GuardMode,
        error: str,
        policy: FailurePolicy | None,
        raw: str = "",
        error_type: str | None = None,
    ) -> Verdict:
        """A verdict the guard did not make: `safety` is None, and it is flagged unless `policy` is fail_open."""
        return cls(mode=mode, safety=None, raw=raw, error=error, error_type=error_type, policy=policy)

    @classmethod
    def from_error(cls, mode: GuardMode, error: GuardError, policy: FailurePolicy | None) -> Verdict:
        """The undecided verdict that stands for `error` (the one shape of a failed item in a batch)."""
        raw = error.raw if isinstance(error, GuardParseError) else ""
        return cls.undecided(mode, str(error), policy, raw, type(error).__name__)


_KEY_LINE = re.compile(r"^[ \t]*(safety|categories|refusal)[ \t]*:[ \t]*(.*?)\s*$", re.IGNORECASE | re.MULTILINE)
_SAFETY = {s.value.lower(): s for s in Safety}
_REFUSAL = {"yes": True, "no": False}


def _single(values: list[str], key: str, raw: str) -> str | None:
    distinct = {v.lower() for v in values}
    if len(distinct) > 1:
        raise GuardParseError(f"conflicting '{key}:' lines {sorted(distinct)}", raw)
    return values[0] if values else None


@lru_cache(maxsize=64)
def _labels_by_name(policy: GuardPolicy, mode: GuardMode) -> dict[str, Category | str]:
    return {category.name.casefold(): category.label for category in policy.categories_for(mode)}


def parse_verdict(text: str, mode: GuardMode | str, policy: GuardPolicy = DEFAULT_POLICY) -> Verdict:
    """Parse the model's raw output by key into a `Verdict`; labels are read against `policy`.

    Tolerates surrounding whitespace, extra lines, reordered lines and lists of categories. The
    `Safety:` line decides: output without exactly one valid verdict word raises `GuardParseError`
    (it is never taken as Safe). Beside a valid one, labels that name no category of the policy for
    this mode and an unreadable `Refusal:` line are kept in `unmapped_labels` and `warnings`; they never
    discard the verdict (under a fail-open policy that would let an Unsafe answer through).
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

    categories: list[Category | str] = []
    unmapped: list[str] = []
    warnings: list[str] = []
    allowed = _labels_by_name(policy, mode)
    unknown = "unknown category" if policy.is_default else f"not a category of policy {policy.name!r}:"
    for line in found["categories"]:
        labels = [label.strip() for label in line.split(",") if label.strip()]
        if [label.lower() for label in labels] == ["none"]:
            continue
        for label in labels:
            category = allowed.get(label.casefold())
            if category is None:
                why = unknown if policy.category(label) is None else f"not a category of {mode.value} moderation:"
                warnings.append(f"{why} {label!r}")
                unmapped.append(label)
            elif category not in categories:
                categories.append(category)

    refusal: bool | None = None
    if mode is GuardMode.RESPONSE:
        answers = {_REFUSAL.get(value.lower()) for value in found["refusal"]}
        if not found["refusal"]:
            warnings.append("no 'Refusal:' line")
        elif None in answers or len(answers) > 1:
            warnings.append(f"unreadable 'Refusal:' line(s) {found['refusal']}")
        else:
            refusal = answers.pop()

    return Verdict(
        mode=mode,
        safety=safety,
        categories=categories,
        refusal=refusal,
        raw=text,
        unmapped_labels=unmapped,
        warnings=warnings,
    )
