"""`python -m bench gateway-chat` (`make bench-gateway-chat`, part of `make bench-gateway`): what the guarded
chat proxy's rails add to a call.

(a) Whole answers: p50/p95 latency unguarded (straight to the upstream) vs through the gateway with the
    input rail `parallel` and `pre_call`, against a fake upstream answering after a fixed delay and a fake
    guard answering after a fixed delay. Target: parallel adds <= max(0, guard - upstream) + 5 ms at p50.
(b) Streams at 50 tokens/s from a fake upstream: time to the first released token and total time,
    unguarded vs hold-back per window size. Targets with the default window: total <= 1.10x unguarded,
    first token within one check of the unguarded one.

The fake upstream and the fake guard (`guard_gateway.testing`, `guard_client.testing`) and the gateway (under
uvicorn) each run in a process of their own on a real socket, and the client measures over HTTP: every hop
is a real one, no two servers share a GIL, and the fakes' delays are the only model time, so the numbers are
the gateway's own cost. Writes JSON, a markdown table and a PNG.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from bench.report import Report
from deploy.launcher import GuardServer, free_port
from deploy.profiles import load_profile
from guard_client import AsyncGuardClient, percentile
from guard_client.testing import FakeVLLM, served_over_http, with_latency
from guard_gateway import create_app, load_config
from guard_gateway.chat.settings import ChatSettings
from guard_gateway.testing import FakeUpstream

REPORT = Report("bench_chat", "Guarded chat proxy: what the rails add", "make bench-gateway-chat", (11, 4.2))
SAFE = "Safety: Safe\nCategories: None"
#: The stand-in's second served name: the main LLM of the stand-in stream arm.
MAIN_LLM = "main-llm"
PROMPT = [{"role": "user", "content": "Write a short note about pasta."}]
ANSWER = " ".join(["pasta"] * 200)  # 200 tokens at 50 tokens/s: 4 s


@contextmanager
def fixed_guard(delay_ms: float, output_ms: float | None = None) -> Iterator[str]:
    """A guard answering Safe after a fixed delay (stands for one check on a warm, prefix-cached GPU guard),
    `output_ms` (default: the same) for response moderation, the output rail's checks; in a process of its
    own, for as long as the block lasts: its /v1 URL."""
    output = None if output_ms is None else output_ms / 1000
    with served_over_http(with_latency(FakeVLLM(), delay_ms / 1000, output_delay=output), process=True) as url:
        yield url + "/v1"


@contextmanager
def fake_upstream(fake: FakeUpstream) -> Iterator[str]:
    """The fake main LLM in a process of its own (so the unguarded baseline pays for a socket like the gateway
    does): its /v1 URL."""
    with served_over_http(fake, process=True) as url:
        yield url + "/v1"


def _serve_forever(make_app: Callable[[], Any], sock: socket.socket) -> None:
    config = uvicorn.Config(make_app(), log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


@contextmanager
def serving_process(make_app: Callable[[], Any]) -> Iterator[str]:
    """`make_app()` served by uvicorn in a forked process of its own, for as long as the block lasts: its
    /v1 URL. The socket listens before the fork, so the first request queues instead of racing the start."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    server = multiprocessing.get_context("fork").Process(target=_serve_forever, args=(make_app, sock), daemon=True)
    server.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    finally:
        server.terminate()
        server.join(timeout=10)
        sock.close()


@contextmanager
def gateway(upstream_url: str, guard_url: str, **chat: str) -> Iterator[str]:
    overrides = {
        "upstream.url": upstream_url,
        "guard.url": guard_url.removesuffix("/v1"),
        "cache.enabled": "false",
        "logging.access_log": "false",
        **chat,
    }
    with serving_process(lambda: create_app(load_config(overrides=overrides, environ={}))) as url:
        yield url


async def _whole(url: str, requests: int) -> list[float]:
    times = []
    async with httpx.AsyncClient(timeout=60) as client:
        for _ in range(requests):
            started = time.perf_counter()
            response = await client.post(url + "/chat/completions", json={"model": "m", "messages": PROMPT})
            response.raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
    return times


def _has_content(line: str) -> bool:
    if not line.startswith("data: {"):
        return False
    choices = json.loads(line[6:]).get("choices") or [{}]
    return bool((choices[0].get("delta") or {}).get("content"))


async def _stream(url: str, requests: int, extra: dict[str, Any] | None = None) -> list[tuple[float, float]]:
    """(ms to the first content token, ms to [DONE]) per streamed request; `extra` joins the request body."""
    results = []
    async with httpx.AsyncClient(timeout=600) as client:
        for _ in range(requests):
            started = time.perf_counter()
            first = None
            body = {"model": "m", "messages": PROMPT, "stream": True, **(extra or {})}
            async with client.stream("POST", url + "/chat/completions", json=body) as response:
                response.raise_for_status()
                async for line in response.aiter_lines():
                    if first is None and _has_content(line):
                        first = (time.perf_counter() - started) * 1000
            results.append((first or float("nan"), (time.perf_counter() - started) * 1000))
    return results


async def _check_round_trip(guard_url: str, requests: int = 20, constrain: bool = False) -> float:
    """p50 ms of one output check (response moderation) straight from a client: what one check costs here, its
    delay plus its HTTP hop, as the gateway's own checks pay it (`constrain` for the stand-in, as the gateway
    is configured for it)."""
    times = []
    async with AsyncGuardClient(guard_url.removesuffix("/v1"), timeout=300) as guard:
        await guard.check_response("warm", "up", constrain=constrain)
        for index in range(requests):
            started = time.perf_counter()
            await guard.check_response(PROMPT[0]["content"], f"Pasta, boiled {index} minutes.", constrain=constrain)
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _summary(times: list[float]) -> dict[str, Any]:
    return {"p50": statistics.median(times), "p95": percentile(times, 95), "n": len(times)}


def bench_whole(guard_ms: float, upstream_ms: float, requests: int, output_ms: float | None = None) -> dict[str, Any]:
    """`output_ms` (default guard_ms): the output check's delay. With 0 the output check costs only its hop,
    so nearly all the added time is the input rail's and the relay's."""
    output_ms = guard_ms if output_ms is None else output_ms
    fake = FakeUpstream(answers=["A short answer."], delay=upstream_ms / 1000)
    with fake_upstream(fake) as upstream_url, fixed_guard(guard_ms, output_ms) as guard_url:
        asyncio.run(_whole(upstream_url, 5))  # warm-up
        arms = {"unguarded": _summary(asyncio.run(_whole(upstream_url, requests)))}
        for mode in ("parallel", "pre_call"):
            with gateway(upstream_url, guard_url, **{"chat.input_mode": mode}) as url:
                asyncio.run(_whole(url, 5))
                arms[mode] = _summary(asyncio.run(_whole(url, requests)))
        output_check_ms = asyncio.run(_check_round_trip(guard_url))
    added = arms["parallel"]["p50"] - arms["unguarded"]["p50"]
    # The output check of the whole answer comes after the upstream call whatever the input mode: the
    # target bounds what the input rail's mode adds, so one output check as it is paid here (its delay and its
    # HTTP hop, measured straight from a client) is subtracted, in every row alike.
    target = max(0.0, guard_ms - upstream_ms) + 5
    return {
        "guard_ms": guard_ms,
        "output_ms": output_ms,
        "upstream_ms": upstream_ms,
        "arms": arms,
        "parallel_added_ms": added,
        "output_check_round_trip_ms": output_check_ms,
        "input_rail_added_ms": added - output_check_ms,
        "target_ms": target,
        "met": added - output_check_ms <= target,
    }


def bench_streams(guard_ms: float, windows: list[int], requests: int) -> dict[str, Any]:
    fake = FakeUpstream(answers=[ANSWER], token_interval=0.02)  # 50 tokens/s
    with fake_upstream(fake) as upstream_url, fixed_guard(guard_ms) as guard_url, fixed_guard(0.0) as instant_url:
        check_ms = asyncio.run(_check_round_trip(guard_url))
        asyncio.run(_stream(upstream_url, 1))  # warm-up, as for whole answers: the first request is cold
        base = asyncio.run(_stream(upstream_url, requests))
        rows: list[dict[str, Any]] = [{"arm": "unguarded", "window": None, **_stream_summary(base)}]
        for window in windows:
            with gateway(upstream_url, guard_url, **{"chat.window_chars": str(window)}) as url:
                asyncio.run(_stream(url, 1))
                rows.append(
                    {"arm": "hold_back", "window": window, **_stream_summary(asyncio.run(_stream(url, requests)))}
                )
        # The same gateway and default window in front of a guard that answers at once: what the proxy itself
        # adds to the first token (the hops through the gateway and to the guard), with no check to wait for.
        with gateway(upstream_url, instant_url) as url:
            asyncio.run(_stream(url, 1))
            relay = {"arm": "hold_back, instant guard", "window": ChatSettings().window_chars}
            rows.append({**relay, **_stream_summary(asyncio.run(_stream(url, requests)))})
    _relative_to_unguarded(rows)
    return {
        "guard_ms": guard_ms,
        "check_round_trip_ms": check_ms,
        "relay_ms": rows[-1]["first_token_added_ms"],
        "tokens_per_s": 50,
        "answer_tokens": 200,
        "rows": rows,
    }


def bench_standin_streams(variant: str, windows: list[int], requests: int, tokens: int) -> dict[str, Any]:
    """Streams from the stand-in on the CPU, which plays both the main LLM (as `main-llm`) and the guard (one
    vLLM server, as the end-to-end tests run it): unguarded straight from it vs hold-back through the gateway
    per window. `tokens` per answer, `ignore_eos` so every answer has that length. Here the checks and the
    generation share the same CPU cores, so the ratios say what a guard on the same machine costs; no target."""
    profile = load_profile("cpu")
    server = GuardServer(
        profile,
        model=f"standin:{variant}",
        host="127.0.0.1",
        port=free_port(),
        extra_args=["--served-model-name", profile.served_model_name, MAIN_LLM],
    )
    body = {"model": MAIN_LLM, "max_tokens": tokens, "ignore_eos": True, "temperature": 0}
    with server:
        guard_url = server.url
        check_ms = asyncio.run(_check_round_trip(guard_url, requests=5, constrain=True))
        asyncio.run(_stream(guard_url + "/v1", 1, body))
        base = asyncio.run(_stream(guard_url + "/v1", requests, body))
        rows: list[dict[str, Any]] = [{"arm": "unguarded", "window": None, **_stream_summary(base)}]
        for window in windows:
            overrides = {"chat.window_chars": str(window), "guard.constrain": "true", "guard.timeout": "300"}
            with gateway(guard_url + "/v1", guard_url, **overrides) as url:
                asyncio.run(_stream(url, 1, body))
                rows.append(
                    {"arm": "hold_back", "window": window, **_stream_summary(asyncio.run(_stream(url, requests, body)))}
                )
    _relative_to_unguarded(rows)
    return {"variant": variant, "answer_tokens": tokens, "check_round_trip_ms": check_ms, "rows": rows}


def _relative_to_unguarded(rows: list[dict[str, Any]]) -> None:
    """Each guarded row's total against the unguarded one (rows[0]) and the time its first token added."""
    unguarded = rows[0]
    for row in rows[1:]:
        row["total_ratio"] = row["total_p50_ms"] / unguarded["total_p50_ms"]
        row["first_token_added_ms"] = row["first_token_p50_ms"] - unguarded["first_token_p50_ms"]


def _stream_summary(results: list[tuple[float, float]]) -> dict[str, float]:
    return {
        "first_token_p50_ms": statistics.median(r[0] for r in results),
        "total_p50_ms": statistics.median(r[1] for r in results),
        "n": len(results),
    }


def chat_markdown(result: dict[str, Any]) -> str:
    """The report's body."""
    lines = [
        "Fake upstream and fake guard with fixed delays, each server in a process of its own, every hop over "
        "HTTP: the numbers are the gateway's own cost.",
        "",
        "## (a) Whole answers: p50 / p95 ms",
        "",
        "| input check | output check | upstream | unguarded | parallel | pre_call | parallel added "
        "| one output check | input rail's share | target | |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case in result["whole"]:
        a = case["arms"]
        output_ms = case.get("output_ms", case["guard_ms"])
        lines.append(
            f"| {case['guard_ms']:.0f} | {output_ms:.0f} | {case['upstream_ms']:.0f} | {a['unguarded']['p50']:.1f} / "
            f"{a['unguarded']['p95']:.1f} | {a['parallel']['p50']:.1f} / {a['parallel']['p95']:.1f} | "
            f"{a['pre_call']['p50']:.1f} / {a['pre_call']['p95']:.1f} | {case['parallel_added_ms']:.1f} | "
            f"{case['output_check_round_trip_ms']:.1f} | {case['input_rail_added_ms']:.1f} | "
            f"<= {case['target_ms']:.0f} | "
            f"{'met' if case['input_rail_added_ms'] <= case['target_ms'] else '**missed**'} |"
        )
    streams = result["streams"]
    default = ChatSettings().window_chars
    lines += [
        "",
        "The output check of a whole answer necessarily follows the upstream answer, so with a 40 ms output check "
        "`parallel added` includes that check; the input rail's share is what remains once one output check, as it "
        "is paid here (its delay and its HTTP hop, p50 straight from a client), is subtracted: the part the target "
        "(`parallel` adds at most max(0, guard - upstream) + 5 ms) bounds, with the proxy's own relay in it. In the "
        "rows with an instant output check, that check is only its hop and nearly all of `parallel added` is the "
        "input rail's and the relay's.",
        "",
        f"## (b) Streams: {streams['answer_tokens']} tokens at {streams['tokens_per_s']} tokens/s, guard "
        f"{streams['guard_ms']:.0f} ms per check (p50)",
        "",
        "| arm | window (chars) | first token ms | total ms | total / unguarded | first token added ms |",
        "|---|---|---|---|---|---|",
    ]
    for row in streams["rows"]:
        mark = " (default)" if row["window"] == default and row["arm"] == "hold_back" else ""
        lines.append(
            f"| {row['arm']} | {row['window'] or '–'}{mark} | {row['first_token_p50_ms']:.0f} | "
            f"{row['total_p50_ms']:.0f} | {row.get('total_ratio', 1.0):.3f} | "
            f"{row.get('first_token_added_ms', 0.0):.0f} |"
        )
    check, relay = streams["check_round_trip_ms"], streams["relay_ms"]
    lines += [
        "",
        f"One check here: {check:.1f} ms (p50 of a response-moderation check of this guard straight from a client: "
        f"its {streams['guard_ms']:.0f} ms delay and its HTTP hop). The proxy's relay: {relay:.1f} ms (the first "
        "token through the same gateway in front of a guard that answers at once: the hops client-gateway-upstream "
        "and gateway-guard, no check to wait for).",
        "",
        "Targets: total <= 1.10x unguarded with the default window; the first token within one check of the "
        "unguarded one. The hold-back makes the first token wait for exactly one check, that of the first text; "
        "what the first token waits beyond the proxy's relay is compared with one check.",
        "",
    ]
    for row in streams["rows"]:
        if row["window"] == default and row["arm"] == "hold_back":
            waited = row["first_token_added_ms"] - relay
            total_ok = row["total_ratio"] <= 1.10
            first_ok = waited <= check
            added = row["first_token_added_ms"]
            strict = "met" if added <= check else f"over by {added - check:.1f} ms"
            lines += [
                f"Default window: total {row['total_ratio']:.2f}x ({'met' if total_ok else '**missed**'}); first "
                f"token +{added:.0f} ms = {relay:.1f} ms relay + {waited:.1f} ms waiting for the check, against one "
                f"check of {check:.1f} ms ({'met' if first_ok else '**missed**'}). Read strictly, relay included: "
                f"+{added:.1f} against {check:.1f} ms ({strict}).",
                "",
            ]
    standin = result.get("standin_streams")
    if standin:
        lines += [
            f"## (c) Streams from the {standin['variant']} stand-in on the CPU: {standin['answer_tokens']} tokens "
            "(p50)",
            "",
            "One vLLM server on these CPU cores plays the main LLM and the guard (constrained verdicts), so every "
            "check competes with the generation it guards: these ratios are what a guard sharing the main LLM's "
            f"machine costs, not the gateway's. One check here: {standin['check_round_trip_ms']:.0f} ms.",
            "",
            "| arm | window (chars) | first token ms | total ms | total / unguarded | first token added ms |",
            "|---|---|---|---|---|---|",
        ]
        for row in standin["rows"]:
            lines.append(
                f"| {row['arm']} | {row['window'] or '–'} | {row['first_token_p50_ms']:.0f} | "
                f"{row['total_p50_ms']:.0f} | {row.get('total_ratio', 1.0):.3f} | "
                f"{row.get('first_token_added_ms', 0.0):.0f} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def draw_chat(result: dict[str, Any], fig: Any) -> None:
    streams = result["streams"]
    left, right = fig.subplots(1, 2)
    for case in result["whole"]:
        names = ["unguarded", "parallel", "pre_call"]
        label = f"input {case['guard_ms']:.0f} / output {case['output_ms']:.0f} / upstream {case['upstream_ms']:.0f} ms"
        left.plot(names, [case["arms"][n]["p50"] for n in names], marker="o", label=label)
    left.set_ylabel("p50 latency, ms")
    left.set_title("whole answers")
    left.legend(fontsize=8)
    rows = streams["rows"][1:]
    xs = [str(row["window"]) for row in rows]
    right.bar(xs, [row["total_ratio"] for row in rows], color="tab:blue", label="total / unguarded")
    right.axhline(1.10, color="tab:red", linestyle="--", label="target 1.10x")
    right.set_ylim(0.9, max(1.2, *[row["total_ratio"] for row in rows]) + 0.05)
    right.set_xlabel("hold-back window, characters")
    right.set_title(f"streams at 50 tokens/s, guard {streams['guard_ms']:.0f} ms")
    right.legend(fontsize=8)


def write_chat_report(result: dict[str, Any], out: Path) -> list[Path]:
    return REPORT.write(out, result, chat_markdown(result), lambda fig: draw_chat(result, fig))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--requests", type=int, default=60, help="requests per arm (whole answers)")
    parser.add_argument("--streams", type=int, default=7, help="streams per arm (each takes ~4 s)")
    parser.add_argument("--guard-ms", type=float, default=40.0, help="fake guard delay per check")
    parser.add_argument("--windows", default="64,128,256,512", help="hold-back windows to measure (chars)")
    parser.add_argument(
        "--standin", choices=["full", "tiny", "none"], default="full", help="the stand-in stream arm (none: skip)"
    )
    parser.add_argument("--standin-streams", type=int, default=2, help="streams per arm from the stand-in")
    parser.add_argument("--standin-tokens", type=int, default=64, help="tokens per stand-in answer")
    parser.add_argument("--standin-windows", default="64,256", help="hold-back windows for the stand-in arm")
    parser.add_argument("--out", type=Path, default=Path("bench/reports"))


def run(args: argparse.Namespace) -> int:
    whole = [
        bench_whole(args.guard_ms, 300.0, args.requests),
        bench_whole(args.guard_ms, 10.0, args.requests),
        bench_whole(args.guard_ms, 300.0, args.requests, output_ms=0.0),
        bench_whole(args.guard_ms, 10.0, args.requests, output_ms=0.0),
    ]
    streams = bench_streams(args.guard_ms, [int(w) for w in args.windows.split(",")], args.streams)
    result: dict[str, Any] = {"whole": whole, "streams": streams}
    if args.standin != "none":
        windows = [int(w) for w in args.standin_windows.split(",")]
        result["standin_streams"] = bench_standin_streams(
            args.standin, windows, args.standin_streams, args.standin_tokens
        )
    paths = write_chat_report(result, args.out)
    print(paths[1].read_text())
    return 0
