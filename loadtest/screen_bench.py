"""`guard screen` at the guard's speed: its throughput against `AsyncGuardClient.check_many` on the same rows
and server, and how one work queue shares two replicas of different capacity.

    python -m loadtest bench-screen                       # fake guards only (make bench-screen)
    python -m loadtest bench-screen --url http://gpu:8000 --rows 4000 --concurrency 128   # + a real server

Fake guards are local HTTP servers in their own processes that answer every check after a fixed
service time, at most `slots` at a time (a guard's batch): capacity = slots / service time. The
replica arm measures each fake alone with `guard screen`, then both together; the ratio is the
together rate over the sum of the separate rates. Writes screen_bench.json, .md and .png.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import multiprocessing
import platform
import signal
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Unpack

from guard_client import AsyncGuardClient, CheckOptions, screen_command
from loadtest.client_overhead import InstantHTTP


@dataclass(frozen=True)
class FakeGuardSpec:
    name: str
    service_s: float
    slots: int

    @property
    def capacity(self) -> float:
        return self.slots / self.service_s


class _GuardHTTP(InstantHTTP):
    """The instant fake server, except that a check waits for one of `slots` and then its service time."""

    def __init__(self, spec: FakeGuardSpec, slots: asyncio.Semaphore) -> None:
        super().__init__()
        self.spec, self.slots = spec, slots
        self.pending: set[asyncio.Task[None]] = set()

    def answer(self, path: str) -> None:
        if path == "/v1/models":
            super().answer(path)
            return
        task = asyncio.ensure_future(self._check())
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _check(self) -> None:
        async with self.slots:
            await asyncio.sleep(self.spec.service_s)
        super().answer("/v1/chat/completions")


def _serve(sock: socket.socket, spec: FakeGuardSpec) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent's handler is not this process's to run

    async def main() -> None:
        slots = asyncio.Semaphore(spec.slots)
        server = await asyncio.get_running_loop().create_server(lambda: _GuardHTTP(spec, slots), sock=sock)
        await server.serve_forever()

    asyncio.run(main())


class FakeGuards:
    """Start one fake guard process per spec; `urls` in the same order."""

    def __init__(self, specs: list[FakeGuardSpec]) -> None:
        self.specs = specs
        self.urls: list[str] = []
        self._processes: list[Any] = []

    def __enter__(self) -> FakeGuards:
        for spec in self.specs:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.listen(1024)
            self.urls.append(f"http://127.0.0.1:{sock.getsockname()[1]}")
            process = multiprocessing.get_context("fork").Process(target=_serve, args=(sock, spec), daemon=True)
            process.start()
            self._processes.append(process)
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self._processes:
            process.terminate()
            process.join()


def _rows(n: int) -> list[str]:
    return [f"row {i}: a message about an everyday topic, number {i}" for i in range(n)]


def screen_rate(urls: list[str], rows: list[str], concurrency: int, work: Path, **extra: str) -> dict[str, Any]:
    """`guard screen` over `rows` against `urls`: the run's checks/s (ResumableRun's own clock) and end to end."""
    work.mkdir(parents=True, exist_ok=True)
    source = work / "rows.jsonl"
    source.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(rows)))
    argv = [str(source), "--out", str(work / "out"), "--concurrency", str(concurrency), "--no-progress"]
    for url in urls:
        argv += ["--url", url]
    for flag, value in extra.items():
        argv += [flag, value] if value else [flag]
    start = time.perf_counter()
    code = screen_command(argv, io.StringIO(), io.StringIO())
    wall = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"guard screen failed with exit status {code}")
    summary = json.loads((work / "out" / "summary.json").read_text())
    throughput = summary["throughput"]
    return {
        "checks_per_s": throughput["checks_per_s"],
        "end_to_end_checks_per_s": len(rows) / wall,
        "by_replica": throughput["by_replica"],
        "checks": throughput["checked_this_run"],
    }


def check_many_rate(url: str, rows: list[str], concurrency: int, **options: Unpack[CheckOptions]) -> float:
    async def run() -> float:
        async with AsyncGuardClient(url) as guard:
            await guard.server_info()
            start = time.perf_counter()
            verdicts = await guard.check_many(rows, concurrency=concurrency, **options)
            elapsed = time.perf_counter() - start
        failed = [v for v in verdicts if not v.decided]
        if failed:
            raise RuntimeError(f"{len(failed)} checks failed, e.g. {failed[0].error}")
        return len(rows) / elapsed

    return asyncio.run(run())


def compare(url: str, rows: list[str], concurrency: int, work: Path, constrain: bool) -> dict[str, Any]:
    """Both ways on the same rows and server, check_many first then screen, then again in the other order."""
    extra = {"--constrain": ""} if constrain else {}
    many, screens = [], []
    for attempt in range(2):
        if attempt == 0:
            many.append(check_many_rate(url, rows, concurrency, constrain=constrain))
            screens.append(screen_rate([url], rows, concurrency, work / f"screen-{attempt}", **extra))
        else:
            screens.append(screen_rate([url], rows, concurrency, work / f"screen-{attempt}", **extra))
            many.append(check_many_rate(url, rows, concurrency, constrain=constrain))
    best_many = max(many)
    best_screen = max(s["checks_per_s"] for s in screens)
    return {
        "url": url,
        "rows": len(rows),
        "concurrency": concurrency,
        "constrain": constrain,
        "check_many_checks_per_s": many,
        "screen_checks_per_s": [s["checks_per_s"] for s in screens],
        "screen_end_to_end_checks_per_s": [s["end_to_end_checks_per_s"] for s in screens],
        "ratio_best": best_screen / best_many,
    }


def replicas(specs: list[FakeGuardSpec], rows: list[str], concurrency: int, work: Path) -> dict[str, Any]:
    with FakeGuards(specs) as guards:
        alone = [
            screen_rate([url], rows, concurrency, work / f"alone-{spec.name}")
            for url, spec in zip(guards.urls, specs, strict=True)
        ]
        together = screen_rate(guards.urls, rows, concurrency, work / "together")
    names = {url: spec.name for url, spec in zip(guards.urls, specs, strict=True)}
    separate_sum = sum(a["checks_per_s"] for a in alone)
    return {
        "guards": [
            {"name": s.name, "service_ms": 1000 * s.service_s, "slots": s.slots, "capacity_checks_per_s": s.capacity}
            for s in specs
        ],
        "alone_checks_per_s": {s.name: a["checks_per_s"] for s, a in zip(specs, alone, strict=True)},
        "together_checks_per_s": together["checks_per_s"],
        "together_by_replica": {names[url]: n for url, n in together["by_replica"].items()},
        "sum_of_separate": separate_sum,
        "ratio": together["checks_per_s"] / separate_sum,
    }


def write_report(result: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "screen_bench.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# `guard screen` throughput",
        "",
        f"Measured by `python -m loadtest bench-screen` on {result['machine']}. Rates are checks/s over the "
        "checking itself (ResumableRun's clock for `guard screen`, the call for `check_many`); each arm ran twice "
        "in alternating order and the best of each is compared.",
        "",
        "## `guard screen` vs `AsyncGuardClient.check_many` (same rows, same server, same concurrency)",
        "",
        "| server | rows | in flight | check_many | guard screen | guard screen end to end | ratio | target |",
        "|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    for c in result["compare"]:
        lines.append(
            f"| {c['label']} | {c['rows']} | {c['concurrency']} | {max(c['check_many_checks_per_s']):.0f} | "
            f"{max(c['screen_checks_per_s']):.0f} | {max(c['screen_end_to_end_checks_per_s']):.0f} | "
            f"**{c['ratio_best']:.2f}×** | ≥ 0.95× |"
        )
    r = result["replicas"]
    lines += [
        "",
        "## Two fake guards, one 4× slower, sharing one work queue",
        "",
        "| guard | service time | slots | capacity | alone (screen) | share when together |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    total = sum(r["together_by_replica"].values()) or 1
    for g in r["guards"]:
        lines.append(
            f"| {g['name']} | {g['service_ms']:.0f} ms | {g['slots']} | {g['capacity_checks_per_s']:.0f}/s | "
            f"{r['alone_checks_per_s'][g['name']]:.0f}/s | {r['together_by_replica'].get(g['name'], 0) / total:.0%} |"
        )
    lines += [
        "",
        f"Together: **{r['together_checks_per_s']:.0f} checks/s** against a sum of separate rates of "
        f"{r['sum_of_separate']:.0f}: **{r['ratio']:.2f}×** (target ≥ 0.9×).",
        "",
        "![throughput](screen_bench.png)",
        "",
    ]
    (out / "screen_bench.md").write_text("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    labels = [c["label"] for c in result["compare"]]
    x = list(range(len(labels)))
    many = [max(c["check_many_checks_per_s"]) for c in result["compare"]]
    screened = [max(c["screen_checks_per_s"]) for c in result["compare"]]
    left.bar([i - 0.2 for i in x], many, 0.4, label="check_many")
    left.bar([i + 0.2 for i in x], screened, 0.4, label="guard screen")
    left.set_xticks(x, labels, fontsize=8)
    left.set_ylabel("checks/s")
    left.set_title("same rows, same server", fontsize=10)
    left.legend(fontsize=8)
    names = [g["name"] for g in r["guards"]]
    alone = [r["alone_checks_per_s"][n] for n in names]
    right.bar(names, alone, label="alone")
    right.bar(["together"], [r["together_checks_per_s"]], color="tab:green", label="together")
    right.axhline(r["sum_of_separate"], color="tab:red", linestyle="--", label="sum of separate")
    right.set_title(f"two replicas, one queue: {r['ratio']:.2f}× the sum", fontsize=10)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "screen_bench.png", dpi=120)
    plt.close(fig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="also compare on this real guard server (e.g. the GPU one)")
    parser.add_argument("--rows", type=int, default=3000, help="rows per run")
    parser.add_argument("--concurrency", type=int, default=64, help="checks in flight (per URL for screen)")
    parser.add_argument("--constrain", action="store_true", help="constrained decoding on the real server")
    parser.add_argument("--out", type=Path, default=Path("loadtest/reports"))


def run(args: argparse.Namespace) -> int:
    rows = _rows(args.rows)
    fast = FakeGuardSpec("fast", service_s=0.02, slots=8)
    slow = FakeGuardSpec("slow (4× slower)", service_s=0.08, slots=8)
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {multiprocessing.cpu_count()} cores, Python {platform.python_version()}",
        "compare": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-screen-") as tmp:
        work = Path(tmp)
        with FakeGuards([fast]) as guards:
            entry = compare(guards.urls[0], rows, args.concurrency, work / "fake", constrain=False)
            result["compare"].append({"label": f"fake guard ({fast.capacity:.0f}/s)", **entry})
        if args.url:
            entry = compare(args.url, rows, args.concurrency, work / "real", args.constrain)
            result["compare"].append({"label": args.url, **entry})
        result["replicas"] = replicas([fast, slow], rows, args.concurrency, work / "replicas")
    write_report(result, args.out)
    print((args.out / "screen_bench.md").read_text())
    return 0
