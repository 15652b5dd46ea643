"""How much the client itself costs: rendering + parsing per verdict, and `check_many` throughput
against a fake guard that answers instantly (so only the client is measured).

    python -m bench client [--checks 4000] [--concurrency 64] [--out bench/reports]   (make bench-client)

The fake guard (`guard_client.testing`) runs in its own process on the other core.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.corpus import prompt_texts
from bench.report import Report
from guard_client import AsyncGuardClient, GuardClient, GuardMode, parse_verdict, render_guard_prompt
from guard_client.testing import FakeVLLM, served_over_http

REPORT = Report("client_overhead", "Client overhead", "make bench-client", (6, 3))
UNSAFE = "Safety: Unsafe\nCategories: Violent"


@contextmanager
def instant_guard() -> Iterator[str]:
    """A fake guard answering Unsafe at once, in a process of its own, for as long as the block lasts: its URL."""
    with served_over_http(FakeVLLM(reply=lambda body: UNSAFE), process=True) as url:
        yield url


def measure_render_parse(prompts: list[str], repeats: int = 5) -> dict[str, float]:
    outputs = ["Safety: Unsafe\nCategories: Violent", "Safety: Safe\nCategories: None"]
    per_verdict = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i, prompt in enumerate(prompts):
            render_guard_prompt([{"role": "user", "content": prompt}])
            parse_verdict(outputs[i % 2], GuardMode.PROMPT)
        per_verdict.append((time.perf_counter() - start) / len(prompts) * 1e6)
    return {"render_parse_us_median": statistics.median(per_verdict), "render_parse_us_min": min(per_verdict)}


def measure_check_many(url: str, prompts: list[str], checks: int, concurrency: int) -> dict[str, float]:
    items = [prompts[i % len(prompts)] for i in range(checks)]

    async def run_async() -> float:
        async with AsyncGuardClient(url) as guard:
            await guard.server_info()
            start = time.perf_counter()
            results = await guard.check_many(items, concurrency=concurrency)
            elapsed = time.perf_counter() - start
        assert all(getattr(r, "decided", False) for r in results), "every fake answer must parse"
        return checks / elapsed

    with GuardClient(url) as guard:
        guard.server_info()
        start = time.perf_counter()
        sync_results = guard.check_many(items[: checks // 4], concurrency=min(concurrency, 32))
        sync_rate = len(sync_results) / (time.perf_counter() - start)
    return {"async_checks_per_s": asyncio.run(run_async()), "sync_checks_per_s": sync_rate}


def write_client_report(result: dict[str, Any], out: Path) -> list[Path]:
    rows = [
        ("render + parse per verdict (median)", f"{result['render_parse_us_median']:.1f} µs", "< 50 µs"),
        ("AsyncGuardClient.check_many", f"{result['async_checks_per_s']:.0f} checks/s", ">= 1000 checks/s"),
        ("GuardClient.check_many (threads)", f"{result['sync_checks_per_s']:.0f} checks/s", "(reference)"),
    ]
    table = "| measure | result | target |\n|---|---|---|\n" + "".join(f"| {a} | {b} | {c} |\n" for a, b, c in rows)

    def draw(fig: Any) -> None:
        ax = fig.subplots()
        names = ["async check_many", "sync check_many"]
        values = [result["async_checks_per_s"], result["sync_checks_per_s"]]
        ax.barh(names, values, color=["tab:blue", "tab:gray"])
        ax.axvline(1000, color="tab:red", linestyle="--", label="target 1000/s")
        ax.set_xlabel("checks/s against an instant fake server")
        ax.legend(loc="lower right")

    body = f"{result['checks']} checks, {result['concurrency']} in flight, fake guard answering instantly.\n\n" + table
    return REPORT.write(out, result, body, draw)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checks", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("bench/reports"))


def run(args: argparse.Namespace) -> int:
    with instant_guard() as url:
        prompts = prompt_texts(1000)
        result: dict[str, Any] = {
            "checks": args.checks,
            "concurrency": args.concurrency,
            **measure_render_parse(prompts),
            **measure_check_many(url, prompts, args.checks, args.concurrency),
        }
    paths = write_client_report(result, args.out)
    print(paths[1].read_text())
    return 0
