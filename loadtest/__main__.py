"""`python -m loadtest`: load tests and benchmarks of the guard server.

python -m loadtest run [--url URL] [--steps 1,2,4,8,16] [--slo-p95-ms MS] ...   (make loadtest)
python -m loadtest bench [--arms ...] [--report-dir loadtest/reports]            (make bench)
python -m loadtest bench-serve                                                   (make bench-serve)
python -m loadtest locate-bench [--url URL]                 extra checks and latency of locate per flagged item
python -m loadtest bench-screen [--url URL]                 guard screen vs check_many; replicas sharing one queue
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.side_by_side import BenchConfig


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _run(args: argparse.Namespace) -> int:
    from loadtest.run import run

    return run(args)


def bench_config(args: argparse.Namespace) -> BenchConfig:
    """The benchmark's configuration; the headline concurrency always joins the sweep."""
    from deploy.launcher import default_profile_name
    from bench.side_by_side import ARMS, BenchConfig

    profile = args.profile or default_profile_name()
    return BenchConfig(
        model=args.model or ("standin:full" if profile == "cpu" else "Qwen/Qwen3Guard-Gen-0.6B"),
        profile=profile,
        prompt_items=args.prompt_items,
        response_items=args.response_items,
        baseline_items=args.baseline_items,
        concurrency=args.concurrency,
        sweep=tuple(sorted(set(args.sweep) | {args.concurrency})),
        seed=args.seed,
        arms=tuple(args.arms) if args.arms else ARMS,
        server_env=dict(args.server_env),
        server_args=list(args.server_arg),
    )


def _bench(args: argparse.Namespace) -> int:
    import shutil

    from bench.side_by_side import default_out_dir, run_bench, write_results

    result = run_bench(bench_config(args))
    out = args.out or default_out_dir()
    paths = write_results(result, out)
    if args.report_dir:
        args.report_dir.mkdir(parents=True, exist_ok=True)
        for path in paths:
            shutil.copy(path, args.report_dir / path.name)
        print(f"report copied to {args.report_dir}", file=sys.stderr)
    print(paths[1].read_text())
    print(f"results: {out}", file=sys.stderr)
    return 0


def _bench_serve(args: argparse.Namespace) -> int:
    from bench.serve import format_serve_bench, run_serve_bench, write_serve_bench

    result = run_serve_bench(args.model, args.profile, args.prompts, args.concurrency, args.seed)
    print(format_serve_bench(result))
    print(f"written: {write_serve_bench(result, args.out)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from bench.side_by_side import ARM_SPECS, ARMS, Arm
    from loadtest.run import add_arguments

    parser = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)

    run = sub.add_parser("run", help="bounded headless locust step ramp; writes CSV, HTML and summary.json")
    add_arguments(run)
    run.set_defaults(handler=_run)

    bench = sub.add_parser("bench", help="side-by-side throughput of the baseline, the recipe and this project")
    bench.add_argument("--model", help="standin:full (default on the CPU), a model directory or a HF id")
    bench.add_argument("--profile", help="serving profile of the tuned arms (default: gpu with a GPU, else cpu)")
    bench.add_argument(
        "--arms",
        nargs="+",
        type=Arm,
        choices=ARMS,
        metavar="ARM",
        help="arms to run (default: all): " + "; ".join(f"{arm}: {spec.label}" for arm, spec in ARM_SPECS.items()),
    )
    bench.add_argument("--prompt-items", type=int, default=48, help="ToxicChat texts (prompt moderation)")
    bench.add_argument("--response-items", type=int, default=32, help="BeaverTails pairs (response moderation)")
    bench.add_argument("--baseline-items", type=int, default=8, help="texts per mode the transformers baseline checks")
    bench.add_argument("--concurrency", type=int, default=16, help="checks in flight for the headline numbers")
    bench.add_argument("--sweep", type=_int_list, default=(1, 4, 16), help="in-flight levels for the plot")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument(
        "--server-env", type=_key_value, action="append", default=[], help="KEY=VALUE for the tuned server (tuning)"
    )
    bench.add_argument("--server-arg", action="append", default=[], help="extra vLLM flag for the tuned server")
    bench.add_argument("--out", type=Path, help="result directory (default: loadtest/results/bench-<timestamp>)")
    bench.add_argument("--report-dir", type=Path, help="also copy bench.json/.md/.png here (e.g. loadtest/reports)")
    bench.set_defaults(handler=_bench)

    serve = sub.add_parser("bench-serve", help="start-up time and checks/s of 32 guard prompts, 16 in flight")
    serve.add_argument("--model", help="default: standin:full on the CPU, the profile's model on a GPU")
    serve.add_argument("--profile", help="default: gpu with a GPU, else cpu")
    serve.add_argument("--prompts", type=int, default=32)
    serve.add_argument("--concurrency", type=int, default=16)
    serve.add_argument("--seed", type=int, default=0)
    serve.add_argument("--out", type=Path, help="JSON path (default: loadtest/results/bench-serve-<timestamp>.json)")
    serve.set_defaults(handler=_bench_serve)

    from loadtest import locate_bench

    located = sub.add_parser("locate-bench", help="extra checks and latency per flagged item with and without locate")
    locate_bench.add_arguments(located)
    located.set_defaults(handler=locate_bench.run)

    from loadtest import screen_bench

    screened = sub.add_parser("bench-screen", help="guard screen vs check_many; two replicas sharing one queue")
    screen_bench.add_arguments(screened)
    screened.set_defaults(handler=screen_bench.run)
    return parser


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through the server context managers, which stop what they started


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from deploy.launcher import LaunchError
        from deploy.profiles import ProfileError
        from bench.corpus import CorpusError

        if isinstance(exc, (LaunchError, ProfileError, CorpusError, ValueError)):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
