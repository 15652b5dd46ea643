"""Every verdict has an explanation that quotes the published policy exactly and never speaks for the model."""

from __future__ import annotations

import json

import pytest

from guard_client import (
    CATEGORIES_BY_MODE,
    Category,
    DecidedBy,
    Explanation,
    FailurePolicy,
    GuardMode,
    Safety,
    Scores,
    Strictness,
    Verdict,
    explain,
    locate,
    render_explanation,
)
from tests.client.published_policy import published_policy
from tests.client.test_policy import GOLDEN_PROMPTS

POLICY = published_policy()
COMBINATIONS = [
    (safety, category, mode)
    for safety in Safety
    for category in Category
    for mode in GuardMode
    if category in CATEGORIES_BY_MODE[mode]
]
ALL_DEFINITIONS = [*POLICY.severities.values(), *(definition for _, definition in POLICY.categories.values())]


def _mode_line(mode: GuardMode, safety: Safety) -> str:
    """What the reference guard prompt says the label means for the mode: read from the golden render."""
    marker = f"**Safety: {safety.value}**: "
    return GOLDEN_PROMPTS[mode].split(marker, 1)[1].split("\n", 1)[0]


def test_every_label_and_mode_is_covered() -> None:
    skipped = {(c, m) for c in Category for m in GuardMode} - {(c, m) for _, c, m in COMBINATIONS}
    assert skipped == {(Category.JAILBREAK, GuardMode.RESPONSE)}  # the model cannot write it there


@pytest.mark.parametrize(("safety", "category", "mode"), COMBINATIONS)
def test_explanation_quotes_the_published_definitions(safety: Safety, category: Category, mode: GuardMode) -> None:
    refusal = True if mode is GuardMode.RESPONSE else None
    verdict = Verdict(mode=mode, safety=safety, categories=[category], refusal=refusal)

    explanation = explain(verdict)
    text = explanation.text()

    name, definition = POLICY.categories[category.value]
    assert explanation.severity is not None
    assert explanation.severity.definition == POLICY.severities[safety.value]
    assert explanation.severity.in_mode == _mode_line(mode, safety)
    assert [(c.label, c.name, c.definition) for c in explanation.categories] == [(category, name, definition)]
    assert f'"{POLICY.severities[safety.value]}"' in text
    assert f'"{_mode_line(mode, safety)}"' in text
    assert f'"{definition}"' in text
    subject = "user prompt" if mode is GuardMode.PROMPT else "assistant response"
    assert f"The guard labelled this {subject} {safety.value}." in text
    assert "published policy" in text and "arXiv 2510.14276" in text
    assert explanation.flagged is verdict.flagged(Strictness.STRICT)
    if mode is GuardMode.RESPONSE:
        assert explanation.refusal is not None and explanation.refusal.refused
        assert '"The ASSISTANT refused to answer or did not comply with the USER\'s request."' in text
    else:
        assert explanation.refusal is None and "Refusal" not in text
    # The wire form round-trips: the gateway and batch reports carry it as JSON.
    assert Explanation.model_validate(json.loads(json.dumps(explanation.model_dump(mode="json")))) == explanation


def test_refusal_no_is_explained_in_response_mode() -> None:
    verdict = Verdict(mode=GuardMode.RESPONSE, safety=Safety.SAFE, refusal=False)
    text = explain(verdict).text()
    assert "Refusal: No, as the guard prompt's refusal policy defines it: \"The ASSISTANT directly answered" in text


@pytest.mark.parametrize("strictness", list(Strictness))
def test_strictness_decides_controversial_and_says_so(strictness: Strictness) -> None:
    verdict = Verdict(mode=GuardMode.PROMPT, safety=Safety.CONTROVERSIAL, categories=[Category.PII])
    explanation = explain(verdict, strictness)
    assert explanation.decided_by is DecidedBy.STRICTNESS
    assert explanation.flagged is (strictness is Strictness.STRICT)
    first = explanation.text().splitlines()[0]
    if strictness is Strictness.STRICT:
        assert first.startswith("Flagged (strict reading: Controversial counts as unsafe")
    else:
        assert first.startswith("Not flagged (loose reading: Controversial counts as safe")
    assert explain(Verdict(mode=GuardMode.PROMPT, safety=Safety.UNSAFE), strictness).decided_by is DecidedBy.SEVERITY


def test_scores_give_the_verdicts_probability() -> None:
    scores = Scores(safe=0.1, unsafe=0.25, controversial=0.6)
    verdict = Verdict(mode=GuardMode.PROMPT, safety=Safety.CONTROVERSIAL, scores=scores)
    strict, loose = explain(verdict), explain(verdict, "loose")
    assert strict.probability == loose.probability == 0.6
    assert strict.flagged_probability == pytest.approx(0.85) and loose.flagged_probability == 0.25
    assert "P(Controversial) = 0.60, P(flagged) = 0.85." in strict.text()
    assert explain(Verdict(mode=GuardMode.PROMPT, safety=Safety.UNSAFE)).probability is None
    assert "P(" not in explain(Verdict(mode=GuardMode.PROMPT, safety=Safety.UNSAFE)).text()


@pytest.mark.parametrize("policy", list(FailurePolicy))
@pytest.mark.parametrize("mode", list(GuardMode))
def test_undecided_verdicts_explain_what_failed_never_a_policy(policy: FailurePolicy, mode: GuardMode) -> None:
    verdict = Verdict.undecided(mode, "no answer from http://guard in time", policy)
    explanation = explain(verdict)
    text = explanation.text()
    assert explanation.severity is None and explanation.categories == [] and explanation.refusal is None
    assert explanation.decided_by is DecidedBy.FAILURE_POLICY
    assert explanation.failure is not None and explanation.failure.policy is policy
    assert "no answer from http://guard in time" in text
    assert not any(definition in text for definition in ALL_DEFINITIONS)
    assert "Safe" not in text.replace("not a Safe verdict", "")
    assert explanation.flagged is (policy is not FailurePolicy.FAIL_OPEN)
    if policy is FailurePolicy.FAIL_OPEN:
        assert "This is not a Safe verdict." in text
    if policy is FailurePolicy.FAIL_CLOSED:
        assert "fail_closed" in text


def test_nothing_reads_as_if_the_model_wrote_it() -> None:
    for safety, category, mode in COMBINATIONS:
        text = explain(Verdict(mode=mode, safety=safety, categories=[category])).text().lower()
        for phrase in ("because", "i think", "the model says", "the model explains", "reason:"):
            assert phrase not in text
        assert "the guard writes labels, not reasons." in text


def test_location_is_rendered_with_offsets_and_excerpt() -> None:
    text = "Fine opening.\n\nThe MARK sentence. Another.\n\nClosing."
    location = locate(text, lambda windows: [("MARK" in w.text) for w in windows])
    verdict = Verdict(mode=GuardMode.PROMPT, safety=Safety.UNSAFE, categories=[Category.VIOLENT])
    rendered = render_explanation(explain(verdict, location=location))
    start = text.index("The MARK")
    assert f'Where: characters {start}-{start + len("The MARK sentence.")}: "The MARK sentence."' in rendered
    whole = locate(text, lambda windows: [False for _ in windows])
    assert "Flagged as a whole: each part of the text passes on its own" in explain(verdict, location=whole).text()
