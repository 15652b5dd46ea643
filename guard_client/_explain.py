"""An explanation for every verdict, built only from what is known and true.

Qwen3Guard-Gen writes labels, never reasons. An `Explanation` therefore says what the guard
labelled, what the model's published policy defines those labels as (quoted, attributed), what
the guard prompt tells the model they mean for the mode checked, how sure the guard was (when
scores are known), which reading (strict or loose) or failure policy decided the block, and, when
`locate` ran, where in the text the verdict comes from. Nothing in it reads as if the model wrote
it. An undecided verdict is explained by what failed, never by a policy.

Under a custom policy a category is explained by the policy file's definition; one of the model's own
names without one there by the published definition; and a category with neither says so.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from guard_client import _policy as published
from guard_client._guard_policy import DEFAULT_POLICY, GuardPolicy
from guard_client._labels import Category, GuardMode, Safety, Strictness
from guard_client._locate import Location
from guard_client._verdict import CategoryLabel, FailurePolicy, Verdict

_SUBJECT = {GuardMode.PROMPT: "user prompt", GuardMode.RESPONSE: "assistant response"}
_EXCERPT_CHARS = 200


class DecidedBy(StrEnum):
    """What decided whether the verdict blocks."""

    SEVERITY = "severity"  # Unsafe blocks and Safe passes under either reading
    STRICTNESS = "strictness"  # Controversial: the strict or loose reading decided
    FAILURE_POLICY = "failure_policy"  # the guard could not decide; the failure policy did


class SeverityExplanation(BaseModel):
    model_config = ConfigDict(frozen=True)

    label: Safety
    definition: str = Field(description="the published policy's definition, quoted")
    in_mode: str = Field(description="what the guard prompt tells the model this label means for the mode checked")


class CategoryExplanation(BaseModel):
    model_config = ConfigDict(frozen=True)

    label: CategoryLabel
    name: str = Field(description="the category's name in the policy that defines it")
    definition: str | None = Field(description="the policy's definition, quoted; None when no policy defines it")
    defined_by: str | None = Field(
        default=published.POLICY_SOURCE, description="where the definition comes from; None when nowhere"
    )


class RefusalExplanation(BaseModel):
    model_config = ConfigDict(frozen=True)

    refused: bool
    meaning: str = Field(description="the guard prompt's refusal policy line for this answer, quoted")


class FailureExplanation(BaseModel):
    model_config = ConfigDict(frozen=True)

    error: str
    error_type: str | None = None
    policy: FailurePolicy | None


class Explanation(BaseModel):
    """Why a verdict reads as it does. `model_dump(mode="json")` is its wire form."""

    model_config = ConfigDict(frozen=True)

    mode: GuardMode
    flagged: bool
    strictness: Strictness
    reading: str = Field(description="what the strictness means")
    decided_by: DecidedBy
    severity: SeverityExplanation | None
    categories: list[CategoryExplanation] = Field(default_factory=list)
    unmapped_labels: list[str] = Field(default_factory=list, description="labels the guard wrote that no policy maps")
    refusal: RefusalExplanation | None = None
    probability: float | None = Field(default=None, description="P(the verdict word), when scores are known")
    flagged_probability: float | None = Field(
        default=None, description="P(flagged) under the strictness, when scores are known"
    )
    failure: FailureExplanation | None = None
    location: Location | None = None
    source: str = Field(default=published.POLICY_SOURCE, description="where the quoted definitions come from")

    def text(self) -> str:
        """A short plain-text rendering for people."""
        return render_explanation(self)


def explain(
    verdict: Verdict,
    strictness: Strictness | str = Strictness.STRICT,
    location: Location | None = None,
    policy: GuardPolicy = DEFAULT_POLICY,
) -> Explanation:
    """Explain `verdict` as read under `strictness`; `location` defaults to what `locate=True` found;
    categories are explained by `policy`, the policy the verdict was checked under."""
    strictness = Strictness(strictness)
    location = location if location is not None else verdict.location
    flagged = verdict.flagged(strictness)
    common = {
        "mode": verdict.mode,
        "flagged": flagged,
        "strictness": strictness,
        "reading": published.STRICTNESS_MEANING[strictness],
        "unmapped_labels": list(verdict.unmapped_labels),
        "location": location,
    }
    if verdict.safety is None:
        failure = FailureExplanation(
            error=verdict.error or "the guard gave no verdict",
            error_type=verdict.error_type,
            policy=verdict.policy,
        )
        return Explanation(decided_by=DecidedBy.FAILURE_POLICY, severity=None, failure=failure, **common)

    safety = verdict.safety
    scores = verdict.scores
    probability = getattr(scores, safety.value.lower()) if scores else None
    return Explanation(
        decided_by=DecidedBy.STRICTNESS if safety is Safety.CONTROVERSIAL else DecidedBy.SEVERITY,
        severity=SeverityExplanation(
            label=safety,
            definition=published.SEVERITY_DEFINITIONS[safety],
            in_mode=published.SEVERITY_IN_MODE[verdict.mode][safety],
        ),
        categories=[_category(label, policy) for label in verdict.categories],
        refusal=(
            RefusalExplanation(refused=verdict.refusal, meaning=published.REFUSAL_MEANING[verdict.refusal])
            if verdict.mode is GuardMode.RESPONSE and verdict.refusal is not None
            else None
        ),
        probability=probability,
        flagged_probability=scores.unsafe_score(strictness) if scores else None,
        **common,
    )


def _category(label: Category | str, policy: GuardPolicy) -> CategoryExplanation:
    """The policy's own definition first; else the published one of a model's own name; else none."""
    category = policy.category(label)
    if category is not None and category.definition is not None:
        return CategoryExplanation(
            label=label, name=category.name, definition=category.definition, defined_by=f"policy {policy.name!r}"
        )
    if isinstance(label, Category):
        return CategoryExplanation(
            label=label, name=published.policy_name(label), definition=published.CATEGORY_DEFINITIONS[label]
        )
    return CategoryExplanation(label=label, name=str(label), definition=None, defined_by=None)


def _category_line(c: CategoryExplanation) -> str:
    label = str(c.label)
    named = f"Category {label}" + (f" ({c.name})" if c.name != label else "")
    if c.definition is None:
        return f"{named}: no definition; the guard prompt listed its name only."
    if c.defined_by == published.POLICY_SOURCE:
        return f'{named}, as the model\'s published policy defines it: "{c.definition}"'
    return f'{named}, as {c.defined_by} defines it: "{c.definition}"'


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _EXCERPT_CHARS else flat[: _EXCERPT_CHARS - 1] + "…"


def _failure_lines(failure: FailureExplanation) -> list[str]:
    kind = f" ({failure.error_type})" if failure.error_type else ""
    lines = [f"The guard could not decide{kind}: {failure.error}"]
    if failure.policy is FailurePolicy.FAIL_OPEN:
        lines.append(
            "Not blocked: the fail_open failure policy lets undecided checks through. This is not a Safe verdict."
        )
    elif failure.policy is FailurePolicy.FAIL_CLOSED:
        lines.append("Blocked by the fail_closed failure policy: an undecided check is treated as flagged.")
    else:
        lines.append("No failure policy applied: an undecided check counts as flagged.")
    return lines


def _location_lines(location: Location) -> list[str]:
    lines = []
    if location.flagged_as_whole:
        lines.append("Flagged as a whole: each part of the text passes on its own; only the whole is flagged.")
    else:
        for span in location.spans:
            whole = " (flagged only as a whole: its parts pass on their own)" if span.as_whole else ""
            lines.append(f'Where: characters {span.start}-{span.end}{whole}: "{_excerpt(span.excerpt)}"')
    budget = f"{location.checks} extra checks (bound {location.max_checks})"
    lines.append(budget if location.complete else f"{budget}; the search stopped before the smallest span")
    return lines


def render_explanation(explanation: Explanation) -> str:
    """Plain text for people: what the guard labelled and what the published policy says it means."""
    e = explanation
    subject = _SUBJECT[e.mode]
    if e.failure is not None:
        return "\n".join([f"Undecided {subject}.", *_failure_lines(e.failure)])
    assert e.severity is not None
    label = e.severity.label
    verdict = "Flagged" if e.flagged else "Not flagged"
    decided = f" ({e.reading})" if e.decided_by is DecidedBy.STRICTNESS else ""
    sure = ""
    if e.probability is not None and e.flagged_probability is not None:
        sure = f" P({label.value}) = {e.probability:.2f}, P(flagged) = {e.flagged_probability:.2f}."
    lines = [
        f"{verdict}{decided}. The guard labelled this {subject} {label.value}.{sure}",
        f'{label.value}, as the model\'s published policy defines it: "{e.severity.definition}"',
        f'In {e.mode.value} moderation, the guard prompt tells the model: "{e.severity.in_mode}"',
    ]
    lines += [_category_line(c) for c in e.categories]
    if e.unmapped_labels:
        lines.append(f"The guard also wrote labels no policy maps: {', '.join(e.unmapped_labels)}")
    if e.refusal is not None:
        answer = "Yes" if e.refusal.refused else "No"
        lines.append(f'Refusal: {answer}, as the guard prompt\'s refusal policy defines it: "{e.refusal.meaning}"')
    if e.location is not None:
        lines += _location_lines(e.location)
    lines.append(f"Definitions quoted from {e.source}. The guard writes labels, not reasons.")
    return "\n".join(lines)
