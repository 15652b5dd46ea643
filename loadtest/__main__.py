"""`python -m loadtest run`: the locust load test of the guard server (`make loadtest`).

python -m loadtest run [--url URL] [--steps 1,2,4,8,16] [--slo-p95-ms MS] ...

The benchmarks are `python -m bench <name>`.
"""

from __future__ import annotations

import argparse
import sys

from bench.__main__ import run_handled


def build_parser() -> argparse.ArgumentParser:
    from loadtest.run import add_arguments, run

    parser = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    ramp = sub.add_parser("run", help="bounded headless locust step ramp; writes CSV, HTML and summary.json")
    add_arguments(ramp)
    ramp.set_defaults(handler=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_handled(args.handler, args)


if __name__ == "__main__":
    sys.exit(main())
