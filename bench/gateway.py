"""`make bench-gateway`: what the gateway costs and what its cache buys.

(a) `/v1/moderations` through the gateway against `AsyncGuardClient` straight to the same vLLM server, 16 in
    flight (cache off, distinct inputs); (b) the gateway's own overhead against an instant fake guard: added
    p50/p99 latency at a fixed rate and the most single-input requests/s one worker sustains; (c) the cache at
    0%, 30% and 90% repeated inputs against the vLLM server.

    python -m bench gateway [--guard-url URL | --variant full|tiny] [--requests N] [--arms a,b,c]

Writes bench_gateway.json, .md and .png to --out (default bench/reports).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from yarl import URL

from bench.client import instant_guard
from bench.corpus import prompt_texts
from bench.loops import closed_loop, open_loop
from bench.report import Report
from deploy.launcher import GatewayServer, GuardServer, free_port
from deploy.profiles import load_profile
from guard_client import AsyncGuardClient, percentile

REPORT = Report("bench_gateway", "Gateway benchmark", "make bench-gateway", (12, 3.8))
TARGETS = {"a_ratio": 0.95, "b_added_p50_ms": 2.0, "b_added_p99_ms": 10.0, "b_max_rps": 1000.0}
CACHE_TARGETS = {30: 1.3, 90: 5.0}
#: Closed-loop trials of (b)'s requests/s; the median is the result, every trial is in the JSON and the table.
RPS_TRIALS = 3
#: (a) alternates its two arms over this many rounds.
A_ROUNDS = 4


class GatewayHTTP:
    """The load generator's client: aiohttp's pool used directly, as `AsyncGuardClient` sends by default, so the
    direct and the gateway sides of (a) and (b) pay the same per request and the measured difference is the
    gateway's."""

    def __init__(self, timeout: float) -> None:
        self.timeout = aiohttp.ClientTimeout(total=None, connect=timeout, sock_connect=timeout, sock_read=timeout)
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> GatewayHTTP:
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512), timeout=self.timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()

    async def post(self, url: URL, body: dict[str, Any]) -> tuple[int, bytes]:
        assert self.session is not None, "use GatewayHTTP in `async with`"
        data = json.dumps(body).encode()
        async with self.session.post(url, data=data, headers={"Content-Type": "application/json"}) as response:
            return response.status, await response.read()


def moderation_call(http: GatewayHTTP, url: str) -> Callable[[str], Awaitable[None]]:
    endpoint = URL(f"{url}/v1/moderations")

    async def call(text: str) -> None:
        status, body = await http.post(endpoint, {"input": text})
        if status != 200:
            raise RuntimeError(f"the gateway answered {status}: {body[:200]!r}")

    return call


def guard_call(guard: AsyncGuardClient, **options: Any) -> Callable[[str], Awaitable[None]]:
    async def call(text: str) -> None:
        verdict = await guard.check_prompt(text, **options)
        if not verdict.decided:
            raise RuntimeError(f"the guard did not decide: {verdict.error}")

    return call


async def _rate(call: Callable[[str], Awaitable[None]], items: list[str], concurrency: int) -> float:
    """Requests/s of a closed loop with `concurrency` in flight; a failed request fails the benchmark."""
    run = await closed_loop(items, call, concurrency)
    if run.errors:
        raise RuntimeError(f"{len(run.errors)} of {len(items)} requests failed, the first: {run.errors[0]}")
    return run.checks_per_s


def repeated(prompts: list[str], count: int, share: float, seed: int = 0) -> list[str]:
    """`count` inputs of which `share` repeat one already seen (a fresh prompt otherwise)."""
    rng = random.Random(seed)
    out: list[str] = []
    for index in range(count):
        fresh = f"{prompts[index % len(prompts)]} #{index}"
        out.append(rng.choice(out) if out and rng.random() < share else fresh)
    return out


def _gateway(stack: ExitStack, guard_url: str, cache: bool, constrain: bool) -> str:
    return _gateway_server(stack, guard_url, cache, constrain).url


def _gateway_server(stack: ExitStack, guard_url: str, cache: bool, constrain: bool) -> GatewayServer:
    config = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "gateway.yaml"
    config.write_text(
        f"cache:\n  enabled: {str(cache).lower()}\nlogging:\n  access_log: false\n"
        f"guard:\n  constrain: {str(constrain).lower()}\n  max_retries: 0\n"
    )
    server = GatewayServer(guard_url, port=free_port(), host="127.0.0.1", config=str(config))
    return stack.enter_context(server)


def arm_overhead(prompts: list[str], requests: int, rate: float) -> dict[str, Any]:
    with instant_guard() as fake_url, ExitStack() as stack:
        server = _gateway_server(stack, fake_url, cache=False, constrain=False)
        url, gateway_process = server.url, psutil.Process(server.pid)
        items = [f"{prompts[i % len(prompts)]} #{i}" for i in range(requests)]

        async def run() -> dict[str, Any]:
            async with AsyncGuardClient(fake_url) as guard, GatewayHTTP(30) as http:
                await guard.server_info()
                await moderation_call(http, url)("warm-up")
                # Side by side: both open loops at the same time, so both see the same machine (a shared one
                # changes speed over minutes) and the gateway gets `rate` requests/s.
                direct, through = await asyncio.gather(
                    open_loop(items, guard_call(guard), rate), open_loop(items, moderation_call(http, url), rate)
                )
                # CPU seconds per request, of the gateway and of this load generator: on a shared machine
                # the request rate says how much CPU the worker got, this says what it needs.
                gateway_cpu, own_cpu = _cpu(gateway_process), time.process_time()
                trials = [await _rate(moderation_call(http, url), items, 64) for _ in range(RPS_TRIALS)]
                gateway_cpu, own_cpu = _cpu(gateway_process) - gateway_cpu, time.process_time() - own_cpu
            done = len(items) * RPS_TRIALS
            return {
                "direct_ms": direct,
                "gateway_ms": through,
                "max_rps_trials": trials,
                "gateway_cpu_ms_per_request": gateway_cpu / done * 1000,
                "loadgen_cpu_ms_per_request": own_cpu / done * 1000,
            }

        raw = asyncio.run(run())
    return {
        "rate": rate,
        "requests": requests,
        "direct_p50_ms": statistics.median(raw["direct_ms"]),
        "direct_p99_ms": percentile(raw["direct_ms"], 99),
        "gateway_p50_ms": statistics.median(raw["gateway_ms"]),
        "gateway_p99_ms": percentile(raw["gateway_ms"], 99),
        "max_rps": statistics.median(raw["max_rps_trials"]),
        "max_rps_trials": raw["max_rps_trials"],
        "gateway_cpu_ms_per_request": raw["gateway_cpu_ms_per_request"],
        "loadgen_cpu_ms_per_request": raw["loadgen_cpu_ms_per_request"],
        "load_average": os.getloadavg(),
    }


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def arm_direct_vs_gateway(guard_url: str, prompts: list[str], requests: int, constrain: bool) -> dict[str, Any]:
    with ExitStack() as stack:
        url = _gateway(stack, guard_url, cache=False, constrain=constrain)

        async def run() -> tuple[float, float]:
            # In rounds, A-B then B-A, so a machine that drifts in speed over the minutes favours neither arm.
            # Each arm and round checks prompts of its own: none finds another's prefix in vLLM's cache.
            seconds, checked = {"direct": 0.0, "gateway": 0.0}, {"direct": 0, "gateway": 0}
            per_round = requests // A_ROUNDS
            slices = iter(range(0, 2 * A_ROUNDS * per_round, per_round))
            async with AsyncGuardClient(guard_url) as guard, GatewayHTTP(120) as http:
                arms = {"direct": guard_call(guard, constrain=constrain), "gateway": moderation_call(http, url)}
                for round_ in range(A_ROUNDS):
                    order = ["direct", "gateway"] if round_ % 2 == 0 else ["gateway", "direct"]
                    for arm in order:
                        start = next(slices)
                        items = [f"{p} #{arm}{round_}.{i}" for i, p in enumerate(prompts[start : start + per_round])]
                        seconds[arm] += len(items) / await _rate(arms[arm], items, 16)
                        checked[arm] += len(items)
            return checked["direct"] / seconds["direct"], checked["gateway"] / seconds["gateway"]

        direct, through = asyncio.run(run())
    return {"direct_checks_per_s": direct, "gateway_checks_per_s": through, "in_flight": 16}


def arm_cache(guard_url: str, prompts: list[str], requests: int, constrain: bool) -> dict[str, Any]:
    rates: dict[str, float] = {}
    for share in (0, 30, 90):
        with ExitStack() as stack:
            url = _gateway(stack, guard_url, cache=True, constrain=constrain)
            items = repeated(prompts, requests, share / 100, seed=share)

            async def run(items: list[str] = items, url: str = url) -> float:
                async with GatewayHTTP(120) as http:
                    return await _rate(moderation_call(http, url), items, 16)

            rates[str(share)] = asyncio.run(run())
    return {"checks_per_s": rates, "speedup": {k: v / rates["0"] for k, v in rates.items()}}


def summarize(result: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(measure, result, target, met) rows of the report; met is None where there is no target."""
    rows: list[tuple[str, str, str, bool | None]] = []
    a = result.get("a")
    if a:
        ratio = a["gateway_checks_per_s"] / a["direct_checks_per_s"]
        rows.append(
            (
                "(a) gateway / direct checks/s, 16 in flight",
                f"{a['gateway_checks_per_s']:.1f} / {a['direct_checks_per_s']:.1f} = {ratio:.2f}x",
                f">= {TARGETS['a_ratio']}x",
                ratio >= TARGETS["a_ratio"],
            )
        )
    b = result.get("b")
    if b:
        p50 = b["gateway_p50_ms"] - b["direct_p50_ms"]
        p99 = b["gateway_p99_ms"] - b["direct_p99_ms"]
        rows += [
            (
                f"(b) added p50 at {b['rate']:.0f} req/s",
                f"{p50:.2f} ms",
                f"<= {TARGETS['b_added_p50_ms']} ms",
                p50 <= 2,
            ),
            (
                f"(b) added p99 at {b['rate']:.0f} req/s",
                f"{p99:.2f} ms",
                f"<= {TARGETS['b_added_p99_ms']} ms",
                p99 <= 10,
            ),
            (
                "(b) single-input req/s, one worker",
                f"{b['max_rps']:.0f}"
                + (
                    f" (median of {', '.join(f'{t:.0f}' for t in b['max_rps_trials'])})"
                    if "max_rps_trials" in b
                    else ""
                ),
                ">= 1000",
                b["max_rps"] >= 1000,
            ),
        ]
        if "gateway_cpu_ms_per_request" in b:
            cpu = b["gateway_cpu_ms_per_request"]
            rows.append(
                (
                    "(b) gateway CPU per request, same run",
                    f"{cpu:.2f} ms (1 core: {1000 / cpu:.0f} req/s); load generator "
                    f"{b['loadgen_cpu_ms_per_request']:.2f} ms; load average {b['load_average'][0]:.1f} "
                    f"on {multiprocessing.cpu_count()} cores",
                    "(what the worker needs, whatever it got)",
                    None,
                )
            )
    c = result.get("c")
    if c:
        for share, speedup in c["speedup"].items():
            target = CACHE_TARGETS.get(int(share))
            rows.append(
                (
                    f"(c) cache, {share}% repeats",
                    f"{c['checks_per_s'][share]:.1f} checks/s ({speedup:.2f}x)",
                    f">= {target}x" if target else "(baseline)",
                    None if target is None else speedup >= target,
                )
            )
    return rows


def markdown(result: dict[str, Any]) -> str:
    """The report's body: one row per measure, with its target and whether it was met."""
    mark = {True: "met", False: "**missed**", None: ""}
    table = "| measure | result | target | |\n|---|---|---|---|\n" + "".join(
        f"| {m} | {r} | {t} | {mark[ok]} |\n" for m, r, t, ok in summarize(result)
    )
    return f"Guard: {result['guard']}.\n\n" + table


def draw(result: dict[str, Any], fig: Any) -> None:
    axes = fig.subplots(1, 3)
    if result.get("a"):
        a = result["a"]
        axes[0].bar(["direct", "gateway"], [a["direct_checks_per_s"], a["gateway_checks_per_s"]])
        axes[0].set_title("(a) checks/s, 16 in flight")
    if result.get("b"):
        b = result["b"]
        axes[1].bar(["p50", "p99"], [b["direct_p50_ms"], b["direct_p99_ms"]], label="direct", alpha=0.6)
        axes[1].bar(["p50", "p99"], [b["gateway_p50_ms"], b["gateway_p99_ms"]], label="gateway", alpha=0.6)
        axes[1].set_title(f"(b) latency ms at {b['rate']:.0f} req/s, instant guard")
        axes[1].legend()
    if result.get("c"):
        c = result["c"]
        axes[2].bar([f"{k}%" for k in c["checks_per_s"]], list(c["checks_per_s"].values()))
        axes[2].set_title("(c) checks/s by share of repeats")


def write_gateway_report(result: dict[str, Any], out: Path) -> list[Path]:
    return REPORT.write(out, result, markdown(result), lambda fig: draw(result, fig))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--guard-url", help="an existing guard server (else the stand-in is started on the CPU)")
    parser.add_argument("--variant", choices=["full", "tiny"], default="full", help="the stand-in to start")
    parser.add_argument("--requests", type=int, default=256, help="requests per measurement against the guard")
    parser.add_argument("--overhead-requests", type=int, default=4000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--arms", default="a,b,c")
    parser.add_argument("--out", type=Path, default=Path("bench/reports"))


def run(args: argparse.Namespace) -> int:
    arms = set(args.arms.split(","))
    prompts = prompt_texts(max(2 * args.requests, 1000))  # (a) checks each prompt once, in one arm
    result: dict[str, Any] = {}
    if "b" in arms:
        result["b"] = arm_overhead(prompts, args.overhead_requests, args.rate)
    if arms & {"a", "c"}:
        with ExitStack() as stack:
            guard_url = args.guard_url
            standin = guard_url is None
            if guard_url is None:
                server = GuardServer(
                    load_profile("cpu"), model=f"standin:{args.variant}", host="127.0.0.1", port=free_port()
                )
                guard_url = stack.enter_context(server).url
            result["guard"] = guard_url if not standin else f"stand-in {args.variant} on the CPU"
            if "a" in arms:
                result["a"] = arm_direct_vs_gateway(guard_url, prompts, args.requests, standin)
            if "c" in arms:
                result["c"] = arm_cache(guard_url, prompts, args.requests, standin)
    result.setdefault("guard", "instant fake only")
    paths = write_gateway_report(result, args.out)
    print(paths[1].read_text())
    return 0
