"""What `locate` costs: extra checks and latency per flagged item, with and without it.

    python -m bench locate                               # an in-process fake guard (make bench-locate)
    python -m bench locate --url http://gpu-box:8000     # a real server (GUARD_API_KEY for a key)

Each item is a text of P paragraphs built from the project's own unharmful sample prompts, with one
harmful sample prompt placed in a random paragraph. Without `--url` a fake guard flags exactly the
texts holding that harmful sentence and answers every request after `--latency-ms` (an idealised
server with room for every request, so the latency measured is rounds x latency plus the client);
with `--url` the real guard decides, and items it does not flag as a whole are counted, not located.
A span "is exactly" the harmful prompt when the search narrowed to its sentences alone; it can be wider
(window granularity) when a multi-sentence prompt straddles a split, or a sentence lacks end punctuation.
Writes locate.json, locate.md and locate.png to `--out`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.corpus import DEFAULT_SAMPLE, load_jsonl
from bench.report import Report
from guard_client import (
    AsyncGuardClient,
    Strictness,
    check_bound,
)
from guard_client.testing import FakeVLLM, with_latency

REPORT = Report("locate", "Cost of locate", "make bench-locate", (9, 3.4))
DEFAULT_PARAGRAPHS = (1, 4, 16, 64)
_MODELS = {"data": [{"id": "qwen3guard", "root": "/models/fake-locate", "max_model_len": 32768}]}


def build_items(paragraphs: int, count: int, seed: int) -> list[tuple[str, str]]:
    """(text, the harmful sentence in it): P paragraphs of 1-4 unharmful sample prompts, one harmful."""
    rng = random.Random(seed * 1000 + paragraphs)
    corpus = load_jsonl(DEFAULT_SAMPLE)
    benign = [item.prompt for item in corpus if not item.harmful and item.response is None]
    harmful = [item.prompt for item in corpus if item.harmful and item.response is None]
    items = []
    for _ in range(count):
        paras = [[rng.choice(benign) for _ in range(rng.randint(1, 4))] for _ in range(paragraphs)]
        bad = rng.choice(harmful)
        target = paras[rng.randrange(paragraphs)]
        target.insert(rng.randint(0, len(target)), bad)
        items.append(("\n\n".join(" ".join(p) for p in paras), bad))
    return items


def fake_guard(harmful: set[str]) -> FakeVLLM:
    """A guard that flags exactly the texts holding one of `harmful` (wrap it in `with_latency` for its time)."""

    def reply(body: dict[str, Any]) -> str:
        text = body["messages"][-1]["content"]
        if any(h in text for h in harmful):
            return "Safety: Unsafe\nCategories: Non-violent Illegal Acts"
        return "Safety: Safe\nCategories: None"

    return FakeVLLM(reply=reply, max_model_len=32768, root="/models/fake-locate")


async def measure(guard: AsyncGuardClient, items: Sequence[tuple[str, str]], strictness: Strictness) -> dict[str, Any]:
    plain, located, extra, bounds, holds, exact, not_flagged = [], [], [], [], 0, 0, 0
    for text, bad in items:
        messages = [{"role": "user", "content": text}]
        start = time.perf_counter()
        verdict = await guard.check(messages)
        checked = time.perf_counter()
        if not verdict.flagged(strictness):
            not_flagged += 1
            continue
        located_verdict = await guard.check(messages, locate=True)
        done = time.perf_counter()
        location = located_verdict.location
        if location is None:  # the second check did not flag it (a real guard may differ between runs)
            not_flagged += 1
            continue
        plain.append((checked - start) * 1000)
        located.append((done - checked) * 1000)
        extra.append(location.checks)
        bounds.append(check_bound(text))
        holds += any(bad in span.excerpt for span in location.spans)
        exact += any(span.excerpt == bad for span in location.spans)
    if not plain:
        return {"flagged_items": 0, "not_flagged": not_flagged}
    return {
        "flagged_items": len(plain),
        "not_flagged": not_flagged,
        "span_holds_the_harmful_prompt": holds,
        "span_is_exactly_the_harmful_prompt": exact,
        "extra_checks_mean": statistics.fmean(extra),
        "extra_checks_max": max(extra),
        "bound_max": max(bounds),
        "within_bound": all(e <= b for e, b in zip(extra, bounds, strict=True)),
        "latency_ms_p50_without": statistics.median(plain),
        "latency_ms_p50_with": statistics.median(located),
        "latency_ms_max_with": max(located),
    }


async def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    strictness = Strictness(args.strictness)
    rows = []
    for paragraphs in args.paragraphs:
        items = build_items(paragraphs, args.items, args.seed)
        if args.url:
            guard = AsyncGuardClient(args.url, timeout=args.timeout)
        else:
            fake = with_latency(fake_guard({bad for _, bad in items}), args.latency_ms / 1000)
            guard = AsyncGuardClient("http://fake-guard", transport=httpx.MockTransport(fake))
        async with guard:
            await guard.server_info()
            rows.append({"paragraphs": paragraphs, **(await measure(guard, items, strictness))})
    return {
        "guard": args.url or f"in-process fake guard, {args.latency_ms:g} ms per request, unlimited parallelism",
        "items_per_size": args.items,
        "strictness": strictness.value,
        "bound": "2*ceil(log2 P) + 2*ceil(log2 S) extra checks (P paragraphs, S most sentences in one)",
        "rows": rows,
    }


def write_locate_report(result: dict[str, Any], out: Path) -> list[Path]:
    head = (
        "| paragraphs | flagged items | extra checks mean / max | bound max | p50 ms without | p50 ms with locate |"
        " span holds / is exactly the harmful prompt |\n|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {r['paragraphs']} | {r['flagged_items']} | {r['extra_checks_mean']:.1f} / {r['extra_checks_max']} | "
        f"{r['bound_max']} | {r['latency_ms_p50_without']:.1f} | {r['latency_ms_p50_with']:.1f} | "
        f"{r['span_holds_the_harmful_prompt']} / {r['span_is_exactly_the_harmful_prompt']} |\n"
        if r["flagged_items"]
        else f"| {r['paragraphs']} | 0 ({r['not_flagged']} not flagged) | - | - | - | - | - |\n"
        for r in result["rows"]
    )
    text = (
        f"Guard: {result['guard']}; {result['items_per_size']} items per size, {result['strictness']} reading. "
        f"Bound: {result['bound']}.\n\n" + head + body
    )

    def draw(fig: Any) -> None:
        rows = [r for r in result["rows"] if r["flagged_items"]]
        left, right = fig.subplots(1, 2)
        sizes = [r["paragraphs"] for r in rows]
        left.plot(sizes, [r["extra_checks_mean"] for r in rows], marker="o", label="extra checks (mean)")
        left.plot(sizes, [r["bound_max"] for r in rows], linestyle="--", label="bound (max)")
        left.set_xscale("log", base=2)
        left.set_xlabel("paragraphs")
        left.legend()
        right.plot(sizes, [r["latency_ms_p50_without"] for r in rows], marker="o", label="check only")
        right.plot(sizes, [r["latency_ms_p50_with"] for r in rows], marker="o", label="check + locate")
        right.set_xscale("log", base=2)
        right.set_xlabel("paragraphs")
        right.set_ylabel("p50 latency per flagged item (ms)")
        right.legend()

    return REPORT.write(out, result, text, draw)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="a real guard server (default: an in-process fake guard)")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--paragraphs", type=lambda s: [int(v) for v in s.split(",")], default=DEFAULT_PARAGRAPHS)
    parser.add_argument("--items", type=int, default=20, help="items per text size")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="the fake guard's time per request")
    parser.add_argument("--strictness", choices=[s.value for s in Strictness], default=Strictness.STRICT.value)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/reports"))


def run(args: argparse.Namespace) -> int:
    paths = write_locate_report(asyncio.run(run_bench(args)), args.out)
    print(paths[1].read_text())
    return 0
