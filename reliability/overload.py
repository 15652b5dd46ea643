"""Overload: the gateway offered twice its guard's capacity for a bounded time, then half of it.

The guard fake has a capacity (slots / delay checks/s). Bounded admission means: past
`limits.max_in_flight` an immediate 429 with Retry-After (no queue), the gateway's memory flat, no
answer later than the guard timeout allows, and every request answered once the load drops."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from reliability.report import Check, Outcome, Report
from reliability.services import InProcessGateway, Service, fake_guard, gateway

SLOTS, DELAY = 4, 0.1  # the guard: 40 checks/s
CAPACITY = SLOTS / DELAY
GUARD_TIMEOUT = 2.0
#: An answer later than this broke the promise: the guard timeout plus time to answer.
LATE = GUARD_TIMEOUT + 1.5


async def _phase(url: str, name: str, rate: float, seconds: float, interface: Any) -> dict[str, Any]:
    results: list[tuple[int, float, bool]] = []
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=None)) as client:

        async def one(i: int) -> None:
            started = time.monotonic()
            try:
                response = await client.post("/v1/moderations", json={"input": f"UNSAFE {name} {i} {started}"})
                status, retry = response.status_code, "retry-after" in response.headers
            except httpx.HTTPError:
                status, retry = 0, False
            results.append((status, time.monotonic() - started, retry))

        tasks = []
        begun = time.monotonic()
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, begun + i / rate - time.monotonic()))
            tasks.append(asyncio.ensure_future(one(i)))
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - begun
    ok = [latency for status, latency, _ in results if status == 200]
    for status, latency, _ in results:
        outcome = (
            Outcome.HANG
            if latency > LATE or status == 0
            else Outcome.VERDICT
            if status == 200
            else Outcome.CLEAR_ERROR
            if status == 429
            else Outcome.POLICY
            if status == 503
            else Outcome.UNEXPECTED_5XX
        )
        interface.add(outcome, f"overload {name}: {status} after {latency:.1f} s")
    latencies = sorted(latency for _, latency, _ in results)
    return {
        "name": name,
        "rate": rate,
        "seconds": seconds,
        "sent": len(results),
        "ok": len(ok),
        "overloaded": sum(status == 429 for status, _, _ in results),
        "overloaded_without_retry_after": sum(status == 429 and not retry for status, _, retry in results),
        "unavailable": sum(status == 503 for status, _, _ in results),
        "other": sum(status not in (200, 429, 503) for status, _, _ in results),
        "late": sum(latency > LATE for latency in latencies),
        "answered_per_s": round(len(ok) / elapsed, 1),
        "p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))] * 1000) if latencies else 0,
    }


def run_overload(report: Report, workdir: Path, quick: bool) -> None:
    high, low = (3.0, 2.0) if quick else (15.0, 6.0)
    guard = fake_guard(workdir, delay=DELAY, slots=SLOTS).start()
    settings = {"limits.max_in_flight": str(2 * SLOTS), "guard.timeout": str(GUARD_TIMEOUT), "cache.enabled": "false"}
    # The full run measures a gateway process of its own; the quick one (inside `make test`) one in process.
    server: Service | InProcessGateway = (
        InProcessGateway(workdir, guard.url, **settings) if quick else gateway(workdir, guard.url, **settings)
    )
    server.start()
    rss: list[float] = []
    done = threading.Event()
    process = psutil.Process(server.pid)

    def sample() -> None:
        while not done.is_set():
            rss.append(process.memory_info().rss / 2**20)
            time.sleep(0.25)

    interface = report.tally("gateway POST /v1/moderations (overload)")
    try:
        warm = asyncio.run(_phase(server.url, "warm-up (0.5x)", CAPACITY / 2, 1.0, interface))
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        over = asyncio.run(_phase(server.url, "overload (2x)", 2 * CAPACITY, high, interface))
        after = asyncio.run(_phase(server.url, "recovery (0.5x)", CAPACITY / 2, low, interface))
        done.set()
        sampler.join()
    finally:
        done.set()
        server.stop()
        guard.stop()
    growth = (max(rss) - rss[0]) if rss else 0.0
    phases = [warm, over, after]
    recovered = after["ok"] == after["sent"] and after["answered_per_s"] >= 0.8 * CAPACITY / 2
    checks = [
        Check(
            "overload: 429 with Retry-After past the in-flight limit",
            over["overloaded"] > 0 and over["overloaded_without_retry_after"] == 0,
            f"{over['overloaded']} of {over['sent']} refused",
        ),
        Check(
            "overload: no answer after the guard timeout",
            all(p["late"] == 0 for p in phases),
            f"late answers (> {LATE} s): {[p['late'] for p in phases]}",
        ),
        Check(
            "overload: memory flat",
            growth < 50,
            f"gateway RSS {rss[0]:.0f} -> max {max(rss):.0f} MiB" if rss else "no samples",
        ),
        Check(
            "overload: throughput recovers when the load drops",
            recovered,
            f"{after['answered_per_s']}/s of {after['rate']}/s offered, {after['ok']}/{after['sent']} answered",
        ),
        Check(
            "overload: the guard kept busy",
            over["answered_per_s"] >= 0.5 * CAPACITY,
            f"{over['answered_per_s']}/s answered at a guard capacity of {CAPACITY:.0f}/s",
        ),
    ]
    report.checks += checks
    report.overload = {
        "guard_capacity_per_s": CAPACITY,
        "max_in_flight": 2 * SLOTS,
        "guard_timeout_s": GUARD_TIMEOUT,
        "rss_mib_start": round(rss[0], 1) if rss else None,
        "rss_mib_max": round(max(rss), 1) if rss else None,
        "rss_mib_median": round(statistics.median(rss), 1) if rss else None,
        "gateway": "in process (quick run: RSS of the whole test process)" if quick else "its own process",
        "ok": all(check.ok for check in checks),
        "phases": phases,
    }
