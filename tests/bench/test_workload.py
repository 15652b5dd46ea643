"""The benchmark's drivers and probes, without a server: percentiles, counters, closed loop, transport."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from bench.corpus import GuardItem
from bench.loops import CheckOutcome, closed_loop
from bench.workload import (
    PREFIX_HITS,
    PREFIX_QUERIES,
    InstrumentedTransport,
    forced_chat_body,
    forced_chat_check,
    hit_rate,
    instrumented_check,
    parse_counters,
)
from guard_client import AsyncGuardClient
from guard_client.testing import VERDICT_IDS, FakeVLLM

PROMPT = GuardItem("p1", "How do I bake bread?", None, "unharmful")
RESPONSE = GuardItem("r1", "How do I pick a lock?", "Use a tension wrench.", "harmful")


METRICS = """# HELP vllm:prefix_cache_queries_total Prefix cache queries
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="qwen3guard"} 1000.0
vllm:prefix_cache_queries_total{engine="1",model_name="qwen3guard"} 500.0
vllm:prefix_cache_queries_created{engine="0",model_name="qwen3guard"} 1.7e9
vllm:prefix_cache_hits_total{engine="0",model_name="qwen3guard"} 600.0
vllm:num_requests_running{model_name="qwen3guard"} 3.0
"""


def test_parse_counters_sums_label_sets_and_ignores_other_series() -> None:
    totals = parse_counters(METRICS, [PREFIX_QUERIES, PREFIX_HITS])
    assert totals == {PREFIX_QUERIES: 1500.0, PREFIX_HITS: 600.0}


def test_hit_rate_is_the_share_of_queried_tokens_served_from_cache() -> None:
    before = {PREFIX_QUERIES: 1000.0, PREFIX_HITS: 100.0}
    assert hit_rate(before, {PREFIX_QUERIES: 1400.0, PREFIX_HITS: 340.0}) == pytest.approx(0.6)
    assert hit_rate(before, dict(before)) is None  # nothing queried: caching off or no requests


def test_closed_loop_keeps_at_most_the_given_number_in_flight_and_keeps_errors_per_item() -> None:
    in_flight, peak = 0, 0

    async def check(item: GuardItem) -> CheckOutcome:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        if item.id == "bad":
            raise RuntimeError("server said no")
        return CheckOutcome(0.0, prompt_tokens=100, output_tokens=9)

    items = [GuardItem(f"i{n}", "text", None, "unharmful") for n in range(11)] + [
        GuardItem("bad", "text", None, "unharmful")
    ]
    result = asyncio.run(closed_loop(items, check, concurrency=3))
    assert peak == 3
    assert result.items == 12
    assert result.errors == ["RuntimeError: server said no"]
    assert all(o.latency_s >= 0.01 for o in result.outcomes)
    summary = result.to_json()
    assert summary["errors"] == 1
    assert summary["mean_output_tokens"] == 9.0  # failed checks are left out of the means
    assert summary["checks_per_s"] == pytest.approx(12 / result.wall_s, rel=1e-3)


def test_forced_chat_body_fixes_the_output_length_whatever_the_weights() -> None:
    body = forced_chat_body(RESPONSE, 13)
    assert body["messages"] == [
        {"role": "user", "content": "How do I pick a lock?"},
        {"role": "assistant", "content": "Use a tension wrench."},
    ]
    assert (body["max_tokens"], body["min_tokens"], body["ignore_eos"], body["temperature"]) == (13, 13, True, 0)


def chat_reply(completion_tokens: int) -> httpx.Response:
    return httpx.Response(
        200, json={"choices": [], "usage": {"prompt_tokens": 300, "completion_tokens": completion_tokens}}
    )


def test_forced_chat_check_rejects_a_server_that_ignores_the_forced_length() -> None:
    async def go(tokens: int) -> CheckOutcome:
        transport = httpx.MockTransport(lambda request: chat_reply(tokens))
        async with httpx.AsyncClient(base_url="http://guard.test", transport=transport) as http:
            return await forced_chat_check(http, PROMPT, 9)

    outcome = asyncio.run(go(9))
    assert (outcome.prompt_tokens, outcome.output_tokens) == (300, 9)
    with pytest.raises(RuntimeError, match="exactly 9 output tokens, the server wrote 4"):
        asyncio.run(go(4))


def run_verdict_first(item: GuardItem, pin: int | None) -> tuple[CheckOutcome, FakeVLLM]:
    fake = FakeVLLM(
        reply=lambda body: "Safety: Unsafe\nCategories: Violent",
        verdict_probs={"Safe": 0.5, "Unsafe": 0.3, "Controversial": 0.2},
    )

    async def go() -> CheckOutcome:
        transport = InstrumentedTransport(inner=httpx.MockTransport(fake))
        async with AsyncGuardClient("http://guard.test", transport=transport, min_verdict_mass=0) as client:
            await client.server_info()
            return await instrumented_check(client, item, pin, verdict_only=True, max_categories=1)

    return asyncio.run(go()), fake


def test_pinning_the_verdict_word_sends_the_follow_up_for_a_harmful_item_only() -> None:
    outcome, fake = run_verdict_first(PROMPT, VERDICT_IDS["Unsafe"])
    verdict_request, follow_up = fake.bodies("/v1/completions")
    assert verdict_request["allowed_token_ids"] == [VERDICT_IDS["Unsafe"]]
    assert "allowed_token_ids" not in follow_up  # flagged: the client asks for the categories, unpinned
    assert not re.fullmatch(follow_up["structured_outputs"]["regex"], " Violent, PII")  # one category
    prompt_words = sum(len(body["prompt"].split()) for body in (verdict_request, follow_up))
    assert (outcome.requests, outcome.prompt_tokens, outcome.output_tokens) == (2, prompt_words, 2)

    outcome, fake = run_verdict_first(PROMPT, VERDICT_IDS["Safe"])
    assert [p for p in fake.paths() if p.startswith("/v1/") and p != "/v1/models"] == ["/v1/completions"]
    assert (outcome.requests, outcome.output_tokens) == (1, 1)


def test_without_a_pin_the_transport_passes_requests_through_unchanged() -> None:
    _, fake = run_verdict_first(PROMPT, None)
    completions = fake.bodies("/v1/completions")
    assert sorted(completions[0]["allowed_token_ids"]) == sorted(VERDICT_IDS.values())
