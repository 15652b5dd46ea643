"""The load test's check mix: shares, request bodies, and data that cannot serve the mix."""

from __future__ import annotations

import random

import pytest

from bench.corpus import GuardItem, load_corpus
from guard_client import MAX_TOKENS, MAX_TOKENS_CONSTRAINED, GuardMode, verdict_regex
from loadtest.mix import CheckMix, check_name, parse_steps


def test_draws_follow_the_shares() -> None:
    mix = CheckMix(load_corpus(), response_share=0.3, stream_share=0.5, constrained=True)
    rng = random.Random(1)
    draws = [mix.draw(rng) for _ in range(4000)]
    responses = sum(item.mode is GuardMode.RESPONSE for item, _ in draws) / len(draws)
    streamed = sum(stream for _, stream in draws) / len(draws)
    assert responses == pytest.approx(0.3, abs=0.03)
    assert streamed == pytest.approx(0.5, abs=0.03)
    only_prompts = CheckMix(load_corpus(), response_share=0.0, stream_share=0.0, constrained=True)
    assert all(item.mode is GuardMode.PROMPT and not s for item, s in (only_prompts.draw(rng) for _ in range(200)))


def test_bodies_are_the_clients_with_the_grammar_only_when_constrained() -> None:
    item = GuardItem("r", "q", "a", "harmful")
    constrained = CheckMix([item], 1.0, 0.0, constrained=True).body(item, "qwen3guard", stream=True)
    assert constrained["structured_outputs"] == {"regex": verdict_regex(GuardMode.RESPONSE)}
    assert (constrained["max_tokens"], constrained["temperature"], constrained["stream"]) == (
        MAX_TOKENS_CONSTRAINED,
        0,
        True,
    )
    free = CheckMix([item], 1.0, 0.0, constrained=False).body(item, "qwen3guard", stream=False)
    assert "structured_outputs" not in free and "stream" not in free
    assert free["max_tokens"] == MAX_TOKENS
    assert free["messages"] == item.messages()


def test_data_that_cannot_serve_the_mix_is_refused() -> None:
    prompts_only = [GuardItem("p", "q", None, "unharmful")]
    with pytest.raises(ValueError, match="no rows with a response"):
        CheckMix(prompts_only, 0.3, 0.0, constrained=False)
    CheckMix(prompts_only, 0.0, 0.0, constrained=False)  # fine without response checks
    with pytest.raises(ValueError, match="between 0 and 1"):
        CheckMix(prompts_only, 0.0, 1.5, constrained=False)


def test_ramp_steps_and_entry_names() -> None:
    assert parse_steps("1, 2,4,") == [1, 2, 4]
    for bad in ("", "0,2", "a,b"):
        with pytest.raises(ValueError):
            parse_steps(bad)
    assert check_name(GuardMode.PROMPT, False) == "prompt check"
    assert check_name(GuardMode.RESPONSE, True) == "response check (stream)"
