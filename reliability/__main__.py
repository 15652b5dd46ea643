"""`python -m reliability` (`make reliability`): fuzz every interface, inject faults and overload, check
the security properties and indirect injection on every surface, and write reliability.json +
reliability.md (exit 1 when an invariant broke).

    python -m reliability [--quick] [--out reliability/reports]
        [--only fuzz,faults,replicas,overload,security,injection]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from reliability.report import Report

PARTS = ("fuzz", "faults", "replicas", "overload", "security", "injection")
#: (gateway cases per route and generation mode, chat cases, client cases per function, CLI, screen files)
SIZES = {"full": (120, 400, 350, 120, 40), "quick": (8, 15, 25, 8, 3)}
#: The scenarios of the quick run (inside `make test`); the full run has all of them.
QUICK_SCENARIOS = [
    "guard_killed_during_check_many",
    "guard_killed_during_moderations",
    "screen_output_full",
    "connections_dropped",
]


def fuzz(report: Report, workdir: Path, quick: bool) -> None:
    from reliability import fuzz_client, fuzz_gateway, services

    per_route, chat, api, cli, screen = SIZES["quick" if quick else "full"]
    record = workdir / "fuzz-guard.jsonl"
    guard = services.fake_guard(workdir, verdict="unsafe", record=record).start()
    upstream = services.fake_upstream(workdir, words=10, token_interval=0).start()
    gateway = services.InProcessGateway(workdir, guard.url, upstream.url + "/v1", **{"cache.enabled": "false"})
    gateway.start()
    try:
        calls = fuzz_gateway.GuardCalls(record)
        fuzz_gateway.fuzz_openapi(report, gateway.url, per_route, calls)
        fuzz_gateway.fuzz_chat(report, gateway.url, chat, calls)
    finally:
        gateway.stop()
        upstream.stop()
        guard.stop()
    fuzz_client.fuzz_api(report, api)
    marked = services.fake_guard(workdir).start()
    try:
        fuzz_client.fuzz_cli(report, marked.url, cli, screen)
    finally:
        marked.stop()


def run(quick: bool, parts: list[str], workdir: Path) -> Report:
    from reliability.faults import Run, run_faults
    from reliability.injection import run_injection
    from reliability.overload import run_overload
    from reliability.replicas import run_replicas
    from reliability.security import run_security

    report = Report("quick" if quick else "full")
    started = time.monotonic()
    if "fuzz" in parts:
        fuzz(report, workdir, quick)
    if "faults" in parts:
        run_faults(report, workdir, quick, QUICK_SCENARIOS if quick else None)
    if "replicas" in parts and not quick:  # two replicas behind the real vllm-router (issue 24): the full run
        run_replicas(Run(report, workdir, quick))
    if "overload" in parts:
        run_overload(report, workdir, quick)
    else:
        report.overload = {"ok": True, "skipped": True}
    if "security" in parts:
        run_security(report, workdir)
    if "injection" in parts:
        run_injection(report, workdir)
    report.seconds = time.monotonic() - started
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the seconds-long version run inside `make test`")
    parser.add_argument("--out", type=Path, default=Path("reliability/reports"), help="report directory")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {PARTS}")
    args = parser.parse_args(argv)
    parts = [part.strip() for part in args.only.split(",") if part.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {sorted(unknown)}")
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        report = run(args.quick, parts, Path(tmp))
    json_path, md_path = report.write(args.out)
    totals = report.totals()
    print(
        f"{'PASSED' if report.passed() else 'FAILED'}: {totals['inputs']} inputs, {totals['scenarios']} fault "
        f"scenarios, lost {totals['lost']}, silent Safe {totals['silent_safe']}, unexpected 5xx "
        f"{totals['unexpected_5xx']}, crashes {totals['crashes']}, hangs {totals['hangs']}, orphans "
        f"{totals['orphans']}, injection cells failed {totals['injection_failed']} ({report.seconds:.0f} s) "
        f"-> {md_path}, {json_path}"
    )
    return 0 if report.passed() else 1


if __name__ == "__main__":
    sys.exit(main())
