"""Parsing the model's output: by key, tolerant of layout, never Safe when it cannot read it."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guard_client import (
    CATEGORIES_BY_MODE,
    Category,
    FailurePolicy,
    GuardMode,
    GuardParseError,
    Safety,
    Scores,
    Strictness,
    Verdict,
    parse_verdict,
)

P, R = GuardMode.PROMPT, GuardMode.RESPONSE


def test_prompt_verdict() -> None:
    v = parse_verdict("Safety: Unsafe\nCategories: Violent", P)
    assert (v.safety, v.categories, v.refusal) == (Safety.UNSAFE, [Category.VIOLENT], None)
    assert v.flagged() and v.decided


def test_response_verdict_with_refusal() -> None:
    v = parse_verdict("Safety: Safe\nCategories: None\nRefusal: Yes", R)
    assert (v.safety, v.categories, v.refusal) == (Safety.SAFE, [], True)
    assert not v.flagged()


def test_refusal_no_is_not_none_and_violent_is_not_inside_non_violent() -> None:
    v = parse_verdict("Safety: Unsafe\nCategories: Non-violent Illegal Acts\nRefusal: No", R)
    assert v.categories == [Category.NON_VIOLENT_ILLEGAL_ACTS]
    assert v.refusal is False


def test_lists_whitespace_reordering_and_extra_lines() -> None:
    text = "\n  Refusal:No \nnoise line\nCategories:  PII ,Suicide & Self-Harm, PII\n  Safety :  Controversial  \n"
    v = parse_verdict(text, R)
    assert v.safety is Safety.CONTROVERSIAL
    assert v.categories == [Category.PII, Category.SUICIDE_SELF_HARM]
    assert v.refusal is False
    assert v.raw == text


def test_prompt_mode_ignores_an_unasked_refusal_line() -> None:
    assert parse_verdict("Safety: Safe\nCategories: None\nRefusal: Yes", P).refusal is None


def test_strict_and_loose() -> None:
    v = parse_verdict("Safety: Controversial\nCategories: Politically Sensitive Topics", P)
    assert v.flagged(Strictness.STRICT) and v.flagged("strict")
    assert not v.flagged(Strictness.LOOSE)


@pytest.mark.parametrize(
    ("text", "mode", "reason"),
    [
        ("", P, "no 'Safety:' line"),
        ("Categories: None", P, "no 'Safety:' line"),
        ("Safe", P, "no 'Safety:' line"),
        ("Safety: Uns", P, "unknown safety value 'Uns'"),
        ("Safety: Safe\nSafety: Unsafe", P, "conflicting 'Safety:'"),
        ("Safety:\nCategories: Violent", P, "unknown safety value ''"),
    ],
)
def test_unreadable_output_is_a_parse_error(text: str, mode: GuardMode, reason: str) -> None:
    with pytest.raises(GuardParseError, match=reason) as info:
        parse_verdict(text, mode)
    assert info.value.raw == text


@pytest.mark.parametrize(
    ("text", "mode", "safety", "categories", "unmapped", "warning"),
    [
        ("Safety: Unsafe\nCategories: Weapons", P, Safety.UNSAFE, [], ["Weapons"], "unknown category 'Weapons'"),
        ("Safety: Unsafe\nCategories: Violent, None", P, Safety.UNSAFE, [Category.VIOLENT], ["None"], "'None'"),
        (
            "Safety: Unsafe\nCategories: Jailbreak\nRefusal: No",
            R,
            Safety.UNSAFE,
            [],
            ["Jailbreak"],
            "not a category of response moderation",
        ),
        (
            "Safety: Controversial\nCategories: PII\nRefusal: Maybe",
            R,
            Safety.CONTROVERSIAL,
            [Category.PII],
            [],
            "Refusal",
        ),
        ("Safety: Unsafe\nCategories: Violent", R, Safety.UNSAFE, [Category.VIOLENT], [], "no 'Refusal:' line"),
    ],
)
def test_the_safety_line_decides_and_unmapped_labels_are_reported(
    text: str, mode: GuardMode, safety: Safety, categories: list[Category], unmapped: list[str], warning: str
) -> None:
    v = parse_verdict(text, mode)
    assert (v.safety, v.categories, v.unmapped_labels) == (safety, categories, unmapped)
    assert v.decided and v.flagged() and any(warning in w for w in v.warnings)


def test_undecided_verdicts_follow_the_failure_policy_and_are_never_safe() -> None:
    closed = Verdict.undecided(P, "server down", FailurePolicy.FAIL_CLOSED)
    opened = Verdict.undecided(P, "server down", FailurePolicy.FAIL_OPEN)
    assert closed.safety is None and opened.safety is None
    assert closed.flagged() and closed.flagged(Strictness.LOOSE)
    assert not opened.flagged()
    assert not closed.decided


def test_scores_unsafe_score_and_mass() -> None:
    s = Scores(safe=0.5, unsafe=0.3, controversial=None)
    assert s.verdict_mass == pytest.approx(0.8)
    assert s.unsafe_score(Strictness.STRICT) == pytest.approx(0.3)
    assert Scores(safe=0.1, unsafe=0.3, controversial=0.2).unsafe_score() == pytest.approx(0.5)
    assert Scores(safe=0.1, unsafe=0.3, controversial=0.2).unsafe_score(Strictness.LOOSE) == pytest.approx(0.3)


# -- generated outputs ---------------------------------------------------------------------------

modes = st.sampled_from(list(GuardMode))


@st.composite
def model_outputs(draw: st.DrawFn) -> tuple[GuardMode, Safety, list[Category], bool | None, str]:
    mode = draw(modes)
    safety = draw(st.sampled_from(list(Safety)))
    categories = draw(st.lists(st.sampled_from(CATEGORIES_BY_MODE[mode]), unique=True, max_size=4))
    refusal = draw(st.booleans()) if mode is R else None
    pad = st.sampled_from(["", " ", "  ", "\t"])
    lines = [f"{draw(pad)}Safety:{draw(pad)} {safety.value}{draw(pad)}"]
    lines.append(f"Categories: {', '.join(c.value for c in categories) if categories else 'None'}{draw(pad)}")
    if refusal is not None:
        lines.append(f"Refusal: {'Yes' if refusal else 'No'}")
    lines += draw(st.lists(st.sampled_from(["", "note: extra line", "Reason - none"]), max_size=2))
    order = draw(st.permutations(lines))
    return mode, safety, categories, refusal, draw(pad) + "\n".join(order) + draw(st.sampled_from(["", "\n"]))


@settings(max_examples=400, deadline=None)
@given(model_outputs())
def test_generated_outputs_parse_to_what_was_written(
    case: tuple[GuardMode, Safety, list[Category], bool | None, str],
) -> None:
    mode, safety, categories, refusal, text = case
    v = parse_verdict(text, mode)
    assert v.safety is safety
    assert v.categories == categories
    assert v.refusal is refusal


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=80), modes)
def test_arbitrary_text_is_either_a_parse_error_or_has_a_safety_line(text: str, mode: GuardMode) -> None:
    try:
        v = parse_verdict(text, mode)
    except GuardParseError:
        return
    assert v.safety is not None
    assert re.search(rf"(?im)^\s*safety\s*:\s*{v.safety.value}\s*$", text)


@settings(max_examples=200, deadline=None)
@given(model_outputs(), st.integers(min_value=0, max_value=200))
def test_truncated_outputs_never_read_as_safe_unless_the_word_is_complete(
    case: tuple[GuardMode, Safety, list[Category], bool | None, str], cut: int
) -> None:
    mode, safety, _, _, text = case
    truncated = text[:cut]
    try:
        v = parse_verdict(truncated, mode)
    except GuardParseError:
        return
    # Whatever parsed is what was written, and its whole verdict line survived the cut.
    assert v.safety is safety
    assert re.search(rf"(?im)^\s*safety\s*:\s*{safety.value}\s*$", truncated)
