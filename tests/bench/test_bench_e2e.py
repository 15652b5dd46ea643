"""The benchmarks' server runs against the real CPU server (tiny stand-in).

Seconds long: a handful of checks. The stand-in's verdicts are random; these tests check what is measured
and reported, never what the verdicts say.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from bench.arms import Arm
from bench.corpus import load_corpus, split_by_mode
from bench.side_by_side import ServerSession, Workload
from bench.workload import REAL_OUTPUT_TOKENS
from guard_client import GuardMode


def sample_workload() -> Workload:
    by_mode = split_by_mode(load_corpus())
    prompts, responses = by_mode[GuardMode.PROMPT], by_mode[GuardMode.RESPONSE]
    return Workload(
        items={"prompt": prompts[:8], "response": responses[:6]},
        warmup={"prompt": prompts[-1:], "response": responses[-1:]},
        sources={"prompt": "sample", "response": "sample"},
    )


def test_forced_runs_write_exactly_the_real_models_output_length(guard_url: str) -> None:
    session = ServerSession(guard_url, sample_workload(), standin=True)
    runs = asyncio.run(session.forced_sweep((2,)))
    assert [(r["mode"], r["concurrency"], r["items"]) for r in runs] == [("prompt", 2, 8), ("response", 2, 6)]
    for run in runs:
        assert run["errors"] == 0
        assert run["mean_output_tokens"] == REAL_OUTPUT_TOKENS[run["mode"]]
        assert 0.0 <= run["prefix_cache_hit_rate"] <= 1.0  # the profile caches prefixes


def test_verdict_first_follows_up_exactly_for_the_items_labelled_harmful(guard_url: str) -> None:
    workload = sample_workload()
    session = ServerSession(guard_url, workload, standin=True)
    runs = asyncio.run(session.client_runs(Arm.VERDICT_FIRST, (4,)))
    for run in runs:
        items = workload.items[run["mode"]]
        harmful = sum(i.harmful for i in items)
        assert run["errors"] == 0
        assert run["followups"] == harmful
        assert run["requests_per_check"] == round(1 + harmful / len(items), 3)


def test_decode_share_sends_the_whole_answer_then_the_verdict_token_fresh_and_cached(guard_url: str) -> None:
    # Texts long enough to fill whole KV blocks past the policy head: only whole blocks are cached.
    workload = sample_workload()
    filler = " and then some more words about it" * 40
    workload.items["prompt"] = [replace(i, prompt=i.prompt + filler) for i in workload.items["prompt"]]
    workload.items["response"] = [replace(i, response=f"{i.response}{filler}") for i in workload.items["response"]]
    session = ServerSession(guard_url, workload, standin=True)
    runs = asyncio.run(session.decode_share_runs(2))
    assert [(r["mode"], r["variant"]) for r in runs] == [
        (mode, variant)
        for mode in ("prompt", "response")
        for variant in ("answer", "verdict-token", "verdict-token-cached")
    ]
    for mode in ("prompt", "response"):
        answer, verdict, cached = (r for r in runs if r["mode"] == mode)
        assert all(r["errors"] == 0 for r in (answer, verdict, cached))
        assert answer["mean_output_tokens"] == REAL_OUTPUT_TOKENS[mode]
        assert verdict["mean_output_tokens"] == cached["mean_output_tokens"] == 1
        # "Safety:" adds the same few tokens to every prompt
        assert 0 < verdict["mean_prompt_tokens"] - answer["mean_prompt_tokens"] <= 3
        # The fresh run finds only the policy head cached; the repeat finds whole prompts.
        assert cached["prefix_cache_hit_rate"] > verdict["prefix_cache_hit_rate"] + 0.2


def test_bench_serve_runs_the_client_and_the_forced_requests(guard_url: str) -> None:
    from bench.serve import _measure

    prompts = sample_workload().items["prompt"]
    runs = asyncio.run(_measure(guard_url, prompts[:6], prompts[7], 3, True))
    assert runs["client"]["errors"] == 0 and runs["forced"]["errors"] == 0
    assert runs["forced"]["mean_output_tokens"] == REAL_OUTPUT_TOKENS["prompt"]
    assert runs["client"]["items"] == runs["forced"]["items"] == 6
    assert runs["client"]["requests_per_check"] == 1.0  # one constrained chat request per check
    assert "constrain=True" in runs["client"]["sent"]
