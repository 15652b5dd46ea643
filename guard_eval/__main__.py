"""`python -m guard_eval`: reproduce the published benchmark against a guard endpoint."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from guard_client import DEFAULT_TIMEOUT, AsyncGuardClient, GuardError
from guard_client.batch import RunSetupError
from guard_client.cli import config_from
from guard_eval._datasets import REGISTRY, default_data_dir, default_published_path
from guard_eval._evaluate import (
    DEFAULT_EVAL_CONCURRENCY,
    DEFAULT_OUT_DIR,
    EvalConfig,
    EvalSetupError,
    evaluate,
)
from guard_eval._metrics import DEFAULT_TOLERANCE_POINTS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m guard_eval",
        description="Run labelled datasets through a guard endpoint; report precision, recall and F1 (strict and "
        "loose), refusal F1, false-positive rates, per-category counts, failures and latency, compared with the "
        "published Qwen3Guard-Gen numbers. Rerunning the same command resumes an interrupted run.",
    )
    parser.add_argument("--url", help="the guard server (default $GUARD_URL, else http://localhost:8000)")
    parser.add_argument("--api-key", help="bearer token (default $GUARD_API_KEY)")
    parser.add_argument("--model", help="served model name (default $GUARD_MODEL, else qwen3guard)")
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=["all"],
        metavar="NAME|PATH",
        help="registered names (see --list), 'all' (default), or JSONL files in the same schema",
    )
    parser.add_argument(
        "--limit", type=int, help="at most N items per dataset, spread evenly over the file (same N, same items)"
    )
    parser.add_argument("--concurrency", type=int, default=DEFAULT_EVAL_CONCURRENCY, help="checks in flight")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per HTTP request")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT_DIR, help=f"results and report directory (default {DEFAULT_OUT_DIR})"
    )
    parser.add_argument(
        "--constrain",
        action="store_true",
        help="constrain decoding to the verdict format (always parses; not how the published numbers were made)",
    )
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument(
        "--resume", dest="fresh", action="store_false", help="continue from the results file in --out (default)"
    )
    resume.add_argument(
        "--fresh", dest="fresh", action="store_true", help="start over; the old results file is renamed, not deleted"
    )
    parser.set_defaults(fresh=False)  # a store_false action would otherwise default to fresh=True
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"where the registered datasets live (default $GUARD_EVAL_DATA, else {default_data_dir()})",
    )
    parser.add_argument(
        "--published", type=Path, default=None, help=f"published F1 JSON (default {default_published_path()})"
    )
    parser.add_argument(
        "--tolerance", type=float, default=DEFAULT_TOLERANCE_POINTS, help="F1 gap in points that gets marked"
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.add_argument("--list", action="store_true", help="list the registered datasets and exit")
    return parser


def _list(data_dir: Path) -> None:
    for spec in REGISTRY.values():
        reference = f"{spec.published[0].value}.{spec.published[1]}" if spec.published else "-"
        kind = "benign set" if spec.benign else ""
        print(f"{spec.name:20} {spec.task.value:22} {reference:40} {kind:10} {spec.path(data_dir)}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    data_dir = args.data_dir or default_data_dir()
    if args.list:
        _list(data_dir)
        return 0
    if args.limit is not None and args.limit < 1:
        print("error: --limit must be at least 1", file=sys.stderr)
        return 2
    if args.concurrency < 1:
        print("error: --concurrency must be at least 1", file=sys.stderr)
        return 2
    config = config_from(
        EvalConfig, args, out_dir=args.out, data_dir=data_dir, published_path=args.published or default_published_path()
    )

    async def run() -> tuple[dict[str, object], dict[str, Path]]:
        async with AsyncGuardClient(args.url, api_key=args.api_key, model=args.model, timeout=args.timeout) as client:
            return await evaluate(client, config)

    try:
        report, written = asyncio.run(run())
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: every finished check is in {args.out}; rerun the same command to resume", file=sys.stderr
        )
        return 130
    except (EvalSetupError, RunSetupError, GuardError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for warning in report["warnings"]:  # type: ignore[attr-defined]
        print(f"warning: {warning}", file=sys.stderr)
    for kind, path in written.items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
