"""`python -m bench serve` (`make bench-serve`): start-up time and checks/s of 32 guard prompts, 16 in flight.

A quick serving check of one profile (cpu without a GPU, gpu with one) on the full-size stand-in
(or `--model`). Two runs over the same 32 prompts: the project's client as a caller would use it
(`constrain=True` on a stand-in, whose free output never parses; plain greedy generation on real
weights), and the same chat requests with the output forced to the 9 tokens the real model writes.
Before each run the prefix cache is reset and warmed with one other prompt, so the second run does
not find the first run's prompts cached.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.corpus import DEFAULT_SAMPLE, TOXICCHAT, GuardItem, load_jsonl, sample, split_by_mode
from bench.loops import CheckOutcome, RunResult, closed_loop
from bench.report import Report
from bench.workload import (
    HTTP_TIMEOUT,
    REAL_OUTPUT_TOKENS,
    InstrumentedTransport,
    RssSampler,
    forced_chat_check,
    instrumented_check,
)
from guard_client import GuardMode

REPORT = Report("bench-serve", "Guard server: start-up and checks/s", "make bench-serve", (5, 3.5))
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def prompts(count: int, seed: int) -> tuple[list[GuardItem], GuardItem, str]:
    """`count` ToxicChat prompts and one more for warming up when the shared data is present, else
    the project's own sample."""
    if TOXICCHAT.is_file():
        chosen = sample(load_jsonl(TOXICCHAT), count + 1, seed=seed, max_chars=2000)
        return chosen[:count], chosen[count], str(TOXICCHAT.name)
    own = split_by_mode(load_jsonl(DEFAULT_SAMPLE))[GuardMode.PROMPT]
    return [own[i % (len(own) - 1)] for i in range(count)], own[-1], DEFAULT_SAMPLE.name


async def _measure(
    url: str, items: list[GuardItem], warmup: GuardItem, concurrency: int, standin: bool
) -> dict[str, Any]:
    from bench.side_by_side import ServerSession, Workload
    from guard_client import AsyncGuardClient

    tokens = REAL_OUTPUT_TOKENS["prompt"]
    session = ServerSession(url, Workload({"prompt": items}, {"prompt": [warmup]}, {}), standin)
    async with (
        AsyncGuardClient(url, timeout=HTTP_TIMEOUT, max_retries=0, transport=InstrumentedTransport()) as client,
        httpx.AsyncClient(base_url=url, timeout=HTTP_TIMEOUT) as http,
    ):

        async def client_check(item: GuardItem) -> CheckOutcome:
            # Constrained (with the one category the real model names) on the random-weight stand-in.
            if standin:
                return await instrumented_check(client, item, constrain=True, max_categories=1)
            return await instrumented_check(client, item)

        await client_check(warmup)  # the client's server facts, first-request costs

        async def via_client() -> RunResult:
            return await closed_loop(items, client_check, concurrency)

        async def forced() -> RunResult:
            return await closed_loop(items, lambda item: forced_chat_check(http, item, tokens), concurrency)

        client_run = await session.measured(http, "prompt", via_client)
        forced_run = await session.measured(http, "prompt", forced)
    return {
        "client": {
            **client_run,
            "sent": "AsyncGuardClient.check(" + ("constrain=True)" if standin else ")") + ", output length chosen by "
            "the model",
        },
        "forced": {**forced_run, "sent": f"chat, output forced to {tokens} tokens"},
    }


def run_serve_bench(
    model: str | None, profile_name: str | None, count: int, concurrency: int, seed: int
) -> dict[str, Any]:
    from deploy.launcher import GuardServer, default_profile_name, free_port
    from deploy.profiles import load_profile

    profile = load_profile(profile_name or default_profile_name())
    items, warmup, source = prompts(count, seed)
    model = model or ("standin:full" if profile.device == "cpu" else profile.model)
    sampler = RssSampler()
    # Dev mode exposes POST /reset_prefix_cache, used between the runs.
    server = GuardServer(profile, model=model, host="127.0.0.1", port=free_port(), env={"VLLM_SERVER_DEV_MODE": "1"})
    with sampler, server:
        print(
            f"ready in {server.startup_seconds:.1f} s; checking {count} prompts, {concurrency} in flight...",
            file=sys.stderr,
        )
        runs = asyncio.run(_measure(server.url, items, warmup, concurrency, server.is_standin))
        standin, startup, model_path = server.is_standin, server.startup_seconds, server.model_path
    result: dict[str, Any] = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "profile": profile.name,
        "model": model_path,
        "standin": standin,
        "startup_s": round(startup, 1),
        "prompts": count,
        "prompt_source": source,
        "concurrency": concurrency,
        "peak_rss_gib": round(sampler.peak_gib, 2),
        **runs,
    }
    if standin:
        result["note"] = "random-weight stand-in: throughput is real, verdicts are random and meaningless"
    return result


def format_serve_bench(result: dict[str, Any]) -> str:
    """The report's body: start-up, then one row per run."""
    lines = [
        f"Start-up: {result['startup_s']:.1f} s ({result['profile']} profile, `{Path(result['model']).name}`); "
        f"peak RSS of the server {result['peak_rss_gib']:.1f} GiB.",
        "",
        "| run | checks/s | prompts | in flight | p50 s | p95 s | output tokens/check | prefix-cache hits | errors |"
        " what was sent |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for key in ("client", "forced"):
        run = result[key]
        lines.append(
            f"| {key} | {run['checks_per_s']:.2f} | {run['items']} | {run['concurrency']} | "
            f"{run['latency_p50_s']:.2f} | {run['latency_p95_s']:.2f} | {run['mean_output_tokens']:.1f} | "
            f"{run['prefix_cache_hit_rate']} | {run['errors']} | {run['sent']} |"
        )
    if result.get("note"):
        lines += ["", f"> **{result['note']}**"]
    return "\n".join(lines)


def write_serve_bench(result: dict[str, Any], out: Path | None) -> list[Path]:
    def draw(fig: Any) -> None:
        axis = fig.subplots()
        axis.bar(["client", "forced"], [result["client"]["checks_per_s"], result["forced"]["checks_per_s"]])
        axis.set_ylabel(f"checks/s, {result['concurrency']} in flight")

    out = out or RESULTS_DIR / f"serve-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    return REPORT.write(out, result, format_serve_bench(result), draw)


def add_arguments(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--model", help="default: standin:full on the CPU, the profile's model on a GPU")
    serve.add_argument("--profile", help="default: gpu with a GPU, else cpu")
    serve.add_argument("--prompts", type=int, default=32)
    serve.add_argument("--concurrency", type=int, default=16)
    serve.add_argument("--seed", type=int, default=0)
    serve.add_argument("--out", type=Path, help="report directory (default: bench/results/serve-<timestamp>)")


def run(args: argparse.Namespace) -> int:
    result = run_serve_bench(args.model, args.profile, args.prompts, args.concurrency, args.seed)
    paths = write_serve_bench(result, args.out)
    print(paths[1].read_text())
    print(f"written: {paths[0].parent}")
    return 0
