"""The load loops every benchmark drives: closed (a fixed number in flight, each sending its next request when
its last one is answered) and open (requests at a fixed rate, whatever the answers' pace), and what a run
measured (`RunResult`; percentiles are `guard_client.percentile`'s, 0-100)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from guard_client import percentile

T = TypeVar("T")


@dataclass
class CheckOutcome:
    latency_s: float
    prompt_tokens: int = 0
    output_tokens: int = 0
    requests: int = 1
    error: str | None = None


@dataclass
class RunResult:
    """What one closed-loop run measured."""

    items: int
    concurrency: int
    wall_s: float
    outcomes: list[CheckOutcome] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return [o.error for o in self.outcomes if o.error]

    @property
    def checks_per_s(self) -> float:
        return self.items / self.wall_s if self.wall_s > 0 else 0.0

    def latency_percentile(self, q: float) -> float:
        value = percentile([o.latency_s for o in self.outcomes if o.error is None], q)
        return float("nan") if value is None else value

    def to_json(self) -> dict[str, Any]:
        ok = [o for o in self.outcomes if o.error is None]
        return {
            "items": self.items,
            "concurrency": self.concurrency,
            "wall_s": round(self.wall_s, 3),
            "checks_per_s": round(self.checks_per_s, 3),
            "latency_p50_s": round(self.latency_percentile(50), 3),
            "latency_p95_s": round(self.latency_percentile(95), 3),
            "errors": len(self.errors),
            "first_error": self.errors[0] if self.errors else None,
            "mean_prompt_tokens": round(statistics.fmean(o.prompt_tokens for o in ok), 1) if ok else 0.0,
            "mean_output_tokens": round(statistics.fmean(o.output_tokens for o in ok), 2) if ok else 0.0,
            "requests_per_check": round(statistics.fmean(o.requests for o in ok), 3) if ok else 0.0,
        }


async def closed_loop(
    items: Sequence[T], check: Callable[[T], Awaitable[CheckOutcome | None]], concurrency: int
) -> RunResult:
    """Run `check` on every item with `concurrency` workers, each sending its next item when its last one
    is answered; errors are kept per item, outcomes in the items' order. A check that returns None is an
    outcome of its latency alone."""
    outcomes: list[CheckOutcome] = [CheckOutcome(0.0)] * len(items)
    queue = iter(enumerate(items))

    async def worker() -> None:
        for index, item in queue:
            started = time.perf_counter()
            try:
                outcome = await check(item) or CheckOutcome(0.0)
            except Exception as exc:  # one failed check must not end the run
                outcome = CheckOutcome(0.0, error=f"{type(exc).__name__}: {exc}"[:300])
            outcome.latency_s = time.perf_counter() - started
            outcomes[index] = outcome

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(items))))))
    return RunResult(len(items), concurrency, time.perf_counter() - started, outcomes)


async def open_loop(items: Sequence[T], call: Callable[[T], Awaitable[object]], rate: float) -> list[float]:
    """Latencies (ms) of requests sent at a fixed rate (requests/s), whatever the answers' pace."""
    latencies: list[float] = []

    async def one(item: T) -> None:
        start = time.perf_counter()
        await call(item)
        latencies.append((time.perf_counter() - start) * 1000)

    tasks = []
    begin = time.perf_counter()
    for index, item in enumerate(items):
        await asyncio.sleep(max(0.0, begin + index / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one(item)))
    await asyncio.gather(*tasks)
    return latencies
