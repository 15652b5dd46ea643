"""The OpenAI moderation shape of a verdict."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types import ModerationCreateResponse

from guard_client import (
    OPENAI_CATEGORIES,
    QWEN_TO_OPENAI,
    Category,
    FailurePolicy,
    GuardMode,
    GuardPolicy,
    PolicyCategory,
    Safety,
    Scores,
    Strictness,
    Verdict,
    parse_verdict,
)
from guard_gateway.openai_moderation import to_openai_moderation
from tests.conftest import TEST_ADAPTER_POLICY


def wire(verdict: Verdict, strictness: Strictness = Strictness.STRICT) -> dict[str, Any]:
    return to_openai_moderation(verdict, strictness).to_wire()


def test_every_label_has_a_documented_mapping_onto_real_openai_keys() -> None:
    assert set(QWEN_TO_OPENAI) == set(Category)
    assert {key for keys in QWEN_TO_OPENAI.values() for key in keys} <= set(OPENAI_CATEGORIES)


def test_unsafe_verdict_shape() -> None:
    v = Verdict(mode=GuardMode.PROMPT, safety=Safety.UNSAFE, categories=[Category.VIOLENT, Category.JAILBREAK])
    result = wire(v)
    assert set(result) == {"flagged", "categories", "category_scores", "category_applied_input_types", "qwen3guard"}
    assert result["flagged"] is True
    assert [k for k, hit in result["categories"].items() if hit] == ["violence"]
    assert result["category_scores"]["violence"] == 1.0 and result["category_scores"]["hate"] == 0.0
    assert set(result["category_applied_input_types"]) == set(OPENAI_CATEGORIES)
    assert result["qwen3guard"]["labels"] == ["Violent", "Jailbreak"]
    assert result["qwen3guard"]["severity"] == "Unsafe"


def test_scores_become_category_scores() -> None:
    v = Verdict(
        mode=GuardMode.RESPONSE,
        safety=Safety.UNSAFE,
        categories=[Category.UNETHICAL_ACTS],
        refusal=False,
        scores=Scores(safe=0.1, unsafe=0.6, controversial=0.3),
    )
    result = wire(v)
    assert result["category_scores"]["hate"] == result["category_scores"]["harassment"] == pytest.approx(0.9)
    assert result["qwen3guard"]["refusal"] is False


def test_safe_and_undecided() -> None:
    safe = wire(Verdict(mode=GuardMode.PROMPT, safety=Safety.SAFE))
    assert safe["flagged"] is False and not any(safe["categories"].values())
    closed = wire(Verdict.undecided(GuardMode.PROMPT, "down", FailurePolicy.FAIL_CLOSED))
    assert closed["flagged"] is True and closed["qwen3guard"]["severity"] is None
    assert closed["qwen3guard"]["error"] == "down"
    assert closed["qwen3guard"]["policy"] == "fail_closed"


def test_strictness_decides_controversial() -> None:
    v = Verdict(mode=GuardMode.PROMPT, safety=Safety.CONTROVERSIAL, categories=[Category.VIOLENT])
    strict, loose = wire(v), wire(v, Strictness.LOOSE)
    assert strict["flagged"] is True and strict["categories"]["violence"] is True
    assert loose["flagged"] is False and not any(loose["categories"].values())
    assert (strict["qwen3guard"]["strictness"], loose["qwen3guard"]["strictness"]) == ("strict", "loose")


def test_the_openai_sdk_parses_the_wire_form() -> None:
    v = Verdict(mode=GuardMode.PROMPT, safety=Safety.UNSAFE, categories=[Category.SUICIDE_SELF_HARM])
    body = {"id": "modr-1", "model": "qwen3guard", "results": [wire(v)]}
    parsed = ModerationCreateResponse.model_validate(body)
    assert parsed.results[0].flagged and parsed.results[0].categories.self_harm
    assert set(body["results"][0]["categories"]) == set(OPENAI_CATEGORIES)


ACME = GuardPolicy.from_yaml(TEST_ADAPTER_POLICY)


def hits(result: dict[str, Any]) -> list[str]:
    return [key for key, hit in result["categories"].items() if hit]


def test_a_custom_category_maps_onto_openai_only_when_the_policy_says_so() -> None:
    advice = parse_verdict("Safety: Unsafe\nCategories: Investment Advice", GuardMode.PROMPT, ACME)
    wire = to_openai_moderation(advice, policy=ACME).to_wire()
    assert wire["flagged"] is True and hits(wire) == ["illicit"]
    assert wire["qwen3guard"]["labels"] == ["Investment Advice"]
    competitor = parse_verdict("Safety: Unsafe\nCategories: Competitor Mention", GuardMode.PROMPT, ACME)
    wire = to_openai_moderation(competitor, policy=ACME).to_wire()
    assert wire["flagged"] is True and hits(wire) == []
    assert set(wire["categories"]) == set(OPENAI_CATEGORIES)
    assert wire["qwen3guard"]["labels"] == ["Competitor Mention"] and wire["qwen3guard"]["severity"] == "Unsafe"
    # The model's own name in a policy that maps it nowhere maps nowhere.
    bare = GuardPolicy(name="bare", categories=(PolicyCategory(name="Violent"),))
    violent = parse_verdict("Safety: Unsafe\nCategories: Violent", GuardMode.PROMPT, bare)
    assert hits(to_openai_moderation(violent, policy=bare).to_wire()) == []
    assert hits(to_openai_moderation(violent).to_wire()) == ["violence"]
