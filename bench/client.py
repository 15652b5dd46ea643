"""How much the client itself costs: rendering + parsing per verdict, and `check_many` throughput
against a local fake server that answers instantly (so only the client is measured).

    python -m loadtest.client_overhead [--checks 4000] [--concurrency 64] [--out loadtest/reports]

Writes client_overhead.json, .md and .png. The fake server runs in its own process on the other core.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import platform
import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from guard_client import AsyncGuardClient, GuardClient, GuardMode, parse_verdict, render_guard_prompt
from loadtest.corpus import TOXICCHAT

PROMPTS_FILE = TOXICCHAT
_MODELS = json.dumps({"data": [{"id": "qwen3guard", "root": "/models/fake", "max_model_len": 32768}]}).encode()
_CHAT = json.dumps(
    {"choices": [{"message": {"content": "Safety: Unsafe\nCategories: Violent"}, "finish_reason": "stop"}]}
).encode()


class InstantHTTP(asyncio.Protocol):
    """Just enough HTTP/1.1 keep-alive to answer the client's two routes at once (`answer` decides how)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            self.answer(head.split(" ", 2)[1])

    def answer(self, path: str) -> None:
        self.write(_MODELS if path == "/v1/models" else _CHAT)

    def write(self, body: bytes) -> None:
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
        self.transport.write(head + body)


def _serve(sock: socket.socket) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(InstantHTTP, sock=sock)
        await server.serve_forever()

    asyncio.run(main())


@contextlib.contextmanager
def instant_guard() -> Iterator[str]:
    """An InstantHTTP guard in a process of its own (forked), for as long as the block lasts: its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    fake = multiprocessing.get_context("fork").Process(target=_serve, args=(sock,), daemon=True)
    fake.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        fake.terminate()
        fake.join()
        sock.close()


def _load_prompts(limit: int) -> list[str]:
    prompts = []
    if PROMPTS_FILE.is_file():
        with PROMPTS_FILE.open() as lines:
            for line in lines:
                prompts.append(json.loads(line)["prompt"])
                if len(prompts) >= limit:
                    break
    return prompts or [f"sample prompt number {i} about an everyday topic" for i in range(limit)]


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


def write_report(result: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "client_overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = [
        ("render + parse per verdict (median)", f"{result['render_parse_us_median']:.1f} µs", "< 50 µs"),
        ("AsyncGuardClient.check_many", f"{result['async_checks_per_s']:.0f} checks/s", ">= 1000 checks/s"),
        ("GuardClient.check_many (threads)", f"{result['sync_checks_per_s']:.0f} checks/s", "(reference)"),
    ]
    table = "| measure | result | target |\n|---|---|---|\n" + "".join(f"| {a} | {b} | {c} |\n" for a, b, c in rows)
    (out / "client_overhead.md").write_text(
        f"# Client overhead\n\nMeasured by `make bench-client` on {result['machine']} "
        f"({result['checks']} checks, {result['concurrency']} in flight, fake server answering instantly).\n\n" + table
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    names = ["async check_many", "sync check_many"]
    values = [result["async_checks_per_s"], result["sync_checks_per_s"]]
    ax.barh(names, values, color=["tab:blue", "tab:gray"])
    ax.axvline(1000, color="tab:red", linestyle="--", label="target 1000/s")
    ax.set_xlabel("checks/s against an instant fake server")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "client_overhead.png", dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.client_overhead", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("loadtest/reports"))
    args = parser.parse_args(argv)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = multiprocessing.get_context("fork").Process(target=_serve, args=(sock,), daemon=True)
    server.start()
    try:
        prompts = _load_prompts(1000)
        result: dict[str, Any] = {
            "machine": f"{platform.machine()}, {multiprocessing.cpu_count()} cores, Python {platform.python_version()}",
            "checks": args.checks,
            "concurrency": args.concurrency,
            **measure_render_parse(prompts),
            **measure_check_many(url, prompts, args.checks, args.concurrency),
        }
    finally:
        server.terminate()
        server.join()
    write_report(result, args.out)
    print((args.out / "client_overhead.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
