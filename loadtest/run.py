"""`python -m loadtest run`: a bounded, headless locust step ramp that writes its reports and stops.

Against `--url` (default `$GUARD_URL`) or, when none is given, against a stand-in it starts on the
CPU and stops afterwards. Results go to `loadtest/results/<timestamp>/`: locust's CSV files and
HTML report plus `summary.json`. With an SLO the command exits 1 when the run misses it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.corpus import load_corpus
from loadtest.gateway_requests import GatewayMix
from loadtest.mix import CheckMix
from loadtest.summary import Slo, summarize

PACKAGE_DIR = Path(__file__).resolve().parent
LOCUSTFILE = PACKAGE_DIR / "locustfile.py"
RESULTS_DIR = PACKAGE_DIR / "results"
CSV_PREFIX = "locust"
#: Seconds allowed past the ramp for locust to start, stop and write its reports (locust ignores
#: --run-time under a load shape, so the process timeout is the backstop).
GRACE_S = 30
STANDIN_NOTE = (
    "The server runs a random-weight stand-in: verdicts are random, decoding was constrained so they parse, "
    "and parse-failure counts say nothing about the real model."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=os.environ.get("GUARD_URL"), help="guard server (default: $GUARD_URL)")
    parser.add_argument(
        "--standin",
        choices=["full", "tiny"],
        default="full",
        help="stand-in to start on the CPU when no URL is given (default: full, the 0.6B shape)",
    )
    # 5 x 16 s plus the full stand-in's 2-3 min start-up keeps `make loadtest` under 5 minutes on
    # 2 cores. Against a GPU, raise both (e.g. --steps 8,16,32,64,128,256 --step-seconds 30).
    parser.add_argument("--steps", default="1,2,4,8,16", help="users in each step of the ramp")
    parser.add_argument("--step-seconds", type=float, default=16.0, help="seconds per step")
    parser.add_argument("--data", action="append", default=[], help="JSONL in the shared schema (repeatable)")
    parser.add_argument("--response-share", type=float, default=0.3, help="share of response checks")
    parser.add_argument("--stream-share", type=float, default=0.25, help="share of streamed checks (TTFT)")
    parser.add_argument("--decoding", choices=["auto", "free", "constrained"], default="auto")
    parser.add_argument("--slo-p95-ms", type=float, help="fail the run when any check type's p95 exceeds this")
    parser.add_argument("--slo-ttft-p95-ms", type=float, help="fail the run when a streamed type's TTFT p95 exceeds")
    parser.add_argument("--slo-max-failure-ratio", type=float, help="fail the run above this share of failed checks")
    parser.add_argument(
        "--gateway-url", default=os.environ.get("GATEWAY_URL"), help="also load the gateway (default: $GATEWAY_URL)"
    )
    parser.add_argument("--gateway-moderation-share", type=float, default=0.0, help="share of /v1/moderations")
    parser.add_argument("--gateway-chat-share", type=float, default=0.0, help="share of guarded chat completions")
    parser.add_argument("--gateway-chat-stream-share", type=float, default=0.5, help="share of those streamed")
    parser.add_argument("--gateway-chat-model", default="", help="main LLM name (default: the gateway's first)")
    parser.add_argument("--workers", type=int, default=0, help="run distributed: this many local locust workers")
    parser.add_argument(
        "--remote-workers",
        type=int,
        default=0,
        help="run distributed: also wait for this many workers started on other machines (see loadtest/README.md)",
    )
    parser.add_argument("--master-port", type=int, default=5557, help="port the locust master listens on")
    parser.add_argument("--out", type=Path, help="result directory (default: loadtest/results/<timestamp>)")


def locust_command(args: argparse.Namespace, url: str, out: Path, decoding: str) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        url,
        "--csv",
        str(out / CSV_PREFIX),
        "--csv-full-history",
        "--html",
        str(out / "report.html"),
        "--stop-timeout",
        "0",
        "--exit-code-on-error",
        "0",  # failures are judged by the SLO, not by locust
        "--only-summary",
        "--guard-steps",
        args.steps,
        "--guard-step-seconds",
        str(args.step_seconds),
        "--guard-response-share",
        str(args.response_share),
        "--guard-stream-share",
        str(args.stream_share),
        "--guard-decoding",
        decoding,
    ]
    if args.gateway_url:
        command += [
            *("--gateway-url", args.gateway_url),
            *("--gateway-moderation-share", str(args.gateway_moderation_share)),
            *("--gateway-chat-share", str(args.gateway_chat_share)),
            *("--gateway-chat-stream-share", str(args.gateway_chat_stream_share)),
        ]
        if args.gateway_chat_model:
            command += ["--gateway-chat-model", args.gateway_chat_model]
    if args.data:
        command += ["--guard-data", ",".join(str(Path(p).resolve()) for p in args.data)]
    if args.workers or args.remote_workers:
        command += [
            "--master",
            "--master-bind-port",
            str(args.master_port),
            "--expect-workers",
            str(args.workers + args.remote_workers),
        ]
    return command


def worker_command(args: argparse.Namespace) -> list[str]:
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--worker",
        "--master-host",
        "127.0.0.1",
        "--master-port",
        str(args.master_port),
    ]


@contextlib.contextmanager
def guard_target(url: str | None, standin: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The URL to load, and what is known about it; starts (and always stops) a stand-in without one."""
    if url:
        yield url.rstrip("/"), {"started_here": False}
        return
    from deploy.launcher import GuardServer, free_port
    from deploy.profiles import load_profile

    profile = load_profile("cpu")
    print(f"no --url/GUARD_URL: starting the {standin} stand-in with the cpu profile...", file=sys.stderr)
    with GuardServer(profile, model=f"standin:{standin}", host="127.0.0.1", port=free_port()) as server:
        print(f"ready in {server.startup_seconds:.0f} s at {server.url}", file=sys.stderr)
        yield (
            server.url,
            {
                "started_here": True,
                "profile": profile.name,
                "model": server.model_path,
                "startup_s": round(server.startup_seconds, 1),
            },
        )


def server_facts(url: str) -> dict[str, Any]:
    """Model root and whether it is a random-weight stand-in, from `/v1/models`."""
    import httpx

    from guard_client import ENV_API_KEY, is_standin_model

    key = os.environ.get(ENV_API_KEY)
    reply = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"} if key else {}, timeout=30.0)
    reply.raise_for_status()
    roots = [str(m.get("root", "")) for m in reply.json().get("data", [])]
    return {"model_roots": roots, "standin": any(is_standin_model(root) for root in roots)}


def run(args: argparse.Namespace) -> int:
    slo = Slo(args.slo_p95_ms, args.slo_max_failure_ratio, args.slo_ttft_p95_ms)
    out = args.out or RESULTS_DIR / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    # Fail before starting anything when the data or the mix cannot work (CorpusError, ValueError).
    CheckMix(load_corpus(args.data), args.response_share, args.stream_share, constrained=False)
    mix = GatewayMix(args.gateway_moderation_share, args.gateway_chat_share, args.gateway_chat_stream_share)
    if mix.uses_gateway and not args.gateway_url:
        raise ValueError("--gateway-moderation-share and --gateway-chat-share need --gateway-url")
    with guard_target(args.url, args.standin) as (url, server):
        facts = server_facts(url)
        decoding = args.decoding
        if decoding == "auto":
            decoding = "constrained" if facts["standin"] else "free"
        command = locust_command(args, url, out, decoding)
        total_s = len([s for s in args.steps.split(",") if s.strip()]) * args.step_seconds
        workers = [
            subprocess.Popen(worker_command(args), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            for _ in range(args.workers)
        ]
        try:
            print(f"locust: steps {args.steps} users, {args.step_seconds:g} s each, against {url}", file=sys.stderr)
            # Remote workers may take a while to connect; local runs end on their own well before this.
            timeout = total_s + GRACE_S + (600 if args.remote_workers else 60)
            completed = subprocess.run(command, timeout=timeout, check=False)
        finally:
            for worker in workers:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    worker.wait(timeout=15)
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()
    summary = {
        "url": url,
        "server": {**server, **facts},
        "decoding": decoding,
        "options": {
            "steps": args.steps,
            "step_seconds": args.step_seconds,
            "data": [str(p) for p in args.data] or ["bench/sample_checks.jsonl"],
            "response_share": args.response_share,
            "stream_share": args.stream_share,
            "gateway_url": args.gateway_url,
            "gateway_moderation_share": args.gateway_moderation_share,
            "gateway_chat_share": args.gateway_chat_share,
            "gateway_chat_stream_share": args.gateway_chat_stream_share,
            "workers": args.workers,
            "remote_workers": args.remote_workers,
        },
        "wall_s": round(time.monotonic() - started, 1),
        "locust_exit_code": completed.returncode,
        **summarize(out / CSV_PREFIX, slo),
    }
    if facts["standin"]:
        summary["note"] = STANDIN_NOTE
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(format_summary(summary, out))
    if completed.returncode != 0:
        print(f"error: locust exited with code {completed.returncode}", file=sys.stderr)
        return 2
    return 0 if summary["slo"]["passed"] else 1


def format_summary(summary: dict[str, Any], out: Path) -> str:
    lines = [f"\nresults: {out}"]
    if summary.get("note"):
        lines.append(f"NOTE: {summary['note']}")
    lines.append(f"{'type':<26} {'reqs':>6} {'fail':>5} {'parse':>5} {'/s':>6} {'p50 ms':>8} {'p95 ms':>8}")
    for entry in summary["requests"]:
        label = f"{entry['name']}{' TTFT' if entry['kind'] == 'ttft' else ''}"
        lines.append(
            f"{label:<26} {entry['requests']:>6} {entry['failures']:>5} {entry['parse_failures']:>5} "
            f"{entry['per_s']:>6.2f} {entry['p50_ms'] or 0:>8.0f} {entry['p95_ms'] or 0:>8.0f}"
        )
    checks = summary["checks"]
    lines.append(
        f"checks: {checks['requests']} ({checks['checks_per_s']:.2f}/s), failures {checks['failures']} "
        f"(parse {checks['parse_failures']}), failure ratio {checks['failure_ratio']:.3f}"
    )
    for step in summary["steps"]:
        lines.append(f"  step {step['users']:>3} users: {step['checks_per_s']:.2f} checks/s over {step['seconds']} s")
    sat = summary["saturation"]
    if sat["reached"]:
        lines.append(f"saturation: ~{sat['knee_users']} users reach 90% of the peak {sat['peak_checks_per_s']:.2f}/s")
    else:
        gain = (
            f" (the last step still gave {sat['last_step_gain']:.2f}x the one before)" if sat["last_step_gain"] else ""
        )
        lines.append(f"saturation: not reached within the ramp{gain}; add larger or longer steps")
    slo = summary["slo"]
    if slo["violations"]:
        lines.append("SLO MISSED: " + "; ".join(slo["violations"]))
    elif any(slo[k] is not None for k in ("p95_ms", "ttft_p95_ms", "max_failure_ratio")):
        lines.append("SLO met")
    return "\n".join(lines)
