"""`python -m bench <name>`: run one benchmark; `python -m bench --help` lists them.

Adding a benchmark: a module `bench/<name>.py` (dashes become underscores) with `add_arguments(parser)` and
`run(args) -> int` that writes its report through a `bench.report.Report`, and one line in `BENCHMARKS`.
`make bench-<name>` then runs it too.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from collections.abc import Callable
from types import FrameType, ModuleType

#: name -> what it measures (its `make` target is bench-<name>; `make bench` runs side-by-side).
BENCHMARKS = {
    "side-by-side": "throughput side by side: transformers, vLLM as the recipe runs it, this project (make bench)",
    "serve": "start-up time and checks/s of 32 guard prompts, 16 in flight, on the full stand-in",
    "client": "the client's own cost: render + parse per verdict, check_many against an instant fake guard",
    "screen": "guard screen vs check_many; two replicas (one 4x slower) sharing one work queue",
    "locate": "extra checks and latency per flagged item with and without locate",
    "tune": "guard tune's LoRA training throughput against the machine's matmul limit; head-only vs naive loss",
    "replicas": "stream windows on one replica and on two behind vllm-router: prefix-cache hits per routing policy",
    "gateway": "the gateway against the client direct, its own overhead, the verdict cache",
    "gateway-chat": "the guarded chat proxy: whole answers and streams, guarded vs unguarded",
    "decode-share": "on a GPU: how much of a check is decode (verdict-first's room)",
}


def module(name: str) -> ModuleType:
    return importlib.import_module(f"bench.{name.replace('-', '_')}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks of the guard, the client and the gateway; each writes JSON, markdown and PNG.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    for name, summary in BENCHMARKS.items():
        sub.add_parser(name, help=summary, description=summary)
    return parser


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through the server context managers, which stop what they started


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not argv or argv[0] not in BENCHMARKS:
        parser.parse_args(argv)  # --help, or a clear error naming the benchmarks
        return 2
    name = argv[0]
    benchmark = module(name)
    sub = argparse.ArgumentParser(prog=f"python -m bench {name}", description=BENCHMARKS[name])
    benchmark.add_arguments(sub)
    return run_handled(benchmark.run, sub.parse_args(argv[1:]))


def run_handled(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """`handler(args)` with SIGTERM as an interrupt (exit 130) and bad input as a one-line error (exit 2)."""
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from bench.corpus import CorpusError
        from deploy.launcher import LaunchError
        from deploy.profiles import ProfileError

        if isinstance(exc, (LaunchError, ProfileError, CorpusError, ValueError)):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
