"""The policy data quotes the published policy exactly, for every label the model can write."""

from __future__ import annotations

from guard_client import (
    CATEGORY_DEFINITIONS,
    REFUSAL_MEANING,
    SEVERITY_DEFINITIONS,
    SEVERITY_IN_MODE,
    Category,
    GuardMode,
    Safety,
    policy_name,
)
from tests.client.published_policy import published_policy
from tests.conftest import GOLDEN

GOLDEN_PROMPTS = {
    GuardMode.PROMPT: (GOLDEN / "prompt_moderation.txt").read_text(encoding="utf-8"),
    GuardMode.RESPONSE: (GOLDEN / "response_moderation.txt").read_text(encoding="utf-8"),
}


def test_reference_lists_every_label() -> None:
    policy = published_policy()
    assert set(policy.severities) == {s.value for s in Safety}
    assert set(policy.categories) == {c.value for c in Category}


def test_severity_definitions_quote_the_published_policy() -> None:
    policy = published_policy()
    assert {s.value: text for s, text in SEVERITY_DEFINITIONS.items()} == policy.severities


def test_category_definitions_and_names_quote_the_published_policy() -> None:
    policy = published_policy()
    assert {c.value: (policy_name(c), text) for c, text in CATEGORY_DEFINITIONS.items()} == policy.categories
    assert policy_name(Category.PII) == "Personally Identifiable Information"


def test_mode_meanings_are_the_reference_guard_prompts_lines() -> None:
    for mode in GuardMode:
        assert set(SEVERITY_IN_MODE[mode]) == set(Safety)
        for safety, text in SEVERITY_IN_MODE[mode].items():
            assert f"**Safety: {safety.value}**: {text}\n" in GOLDEN_PROMPTS[mode]
    assert set(REFUSAL_MEANING) == {True, False}
    assert f"**Refusal: Yes**: {REFUSAL_MEANING[True]}\n" in GOLDEN_PROMPTS[GuardMode.RESPONSE]
    assert f"**Refusal: No**: {REFUSAL_MEANING[False]}\n" in GOLDEN_PROMPTS[GuardMode.RESPONSE]
