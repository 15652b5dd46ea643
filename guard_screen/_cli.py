"""`guard screen INPUT --out DIR`: moderate a whole dataset, resumably, across one or more guard replicas.

    guard screen logs.jsonl --out screened/                      # rows with 'text', 'prompt'(+'response') or 'messages'
    guard screen chats.parquet --messages-column conversation --out screened/ --parquet
    guard screen big.csv --url http://a:8000 --url http://b:8000 --concurrency 128 --out screened/

Rerunning the same command resumes: rows already answered are not checked again.
Exit status: 0 when every checkable row has an answer, 1 when some got none (rerun to retry them) or
the guard cannot be reached, 2 for bad usage or unreadable input, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, TextIO

from guard_client import (
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    DEFAULT_POLICY,
    DEFAULT_TIMEOUT,
    ENV_API_KEY,
    ENV_MODEL,
    ENV_URL,
    STANDIN_WARNING,
    AsyncGuardClient,
    GuardError,
    GuardPolicy,
    GuardPolicyError,
)
from guard_client.batch import RunSetupError
from guard_client.cli import add_check_flags, check_options
from guard_screen._reader import Columns, InputFormat, ScreenInputError, read_input
from guard_screen._screen import ScreenSetupError, screen

#: Checks in flight per guard URL: enough to keep a GPU replica's batch (max_num_seqs 256 in the
#: `gpu` profile) busy once the client's round trip is counted; lower it for a CPU server.
DEFAULT_SCREEN_CONCURRENCY = 64
#: How many rejected rows are printed (all are in summary.json).
PRINTED_PROBLEMS = 10

ClientFactory = Callable[..., AsyncGuardClient]


def screen_command(
    argv: list[str],
    out: TextIO | None = None,
    err: TextIO | None = None,
    make_client: ClientFactory | None = None,
) -> int:
    """`guard screen ARGV...` in process. `make_client(url, **kwargs)` builds each replica's client
    (default `AsyncGuardClient`): pass your own to use another transport, e.g. TLS settings or a fake."""
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(
        prog="guard screen",
        description=doc.split("\n\n")[0],
        epilog="\n\n".join(doc.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return run_screen(parser.parse_args(argv), out or sys.stdout, err or sys.stderr, make_client)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, metavar="INPUT", help="a .jsonl, .csv or .parquet file")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory (the run's state)")
    parser.add_argument("--format", choices=[f.value for f in InputFormat], help="input format (default: by suffix)")
    columns = parser.add_argument_group("columns (defaults: id, messages, prompt + response, text)")
    columns.add_argument("--id-column", metavar="NAME", help="row id (default 'id', else the row's line number)")
    columns.add_argument("--text-column", metavar="NAME", help="a text to check as a user prompt")
    columns.add_argument("--prompt-column", metavar="NAME", help="the user prompt")
    columns.add_argument("--response-column", metavar="NAME", help="the assistant response (response moderation)")
    columns.add_argument("--messages-column", metavar="NAME", help="OpenAI-style messages (a list, or JSON in CSV)")
    columns.add_argument("--keep", action="append", default=[], metavar="NAME", help="copy a column into each record")
    parser.add_argument(
        "--url",
        action="append",
        metavar="URL",
        help=f"a guard replica; repeat for several (they share one work queue). Default ${ENV_URL}, "
        f"else {DEFAULT_BASE_URL}",
    )
    parser.add_argument("--api-key", help=f"bearer token (default ${ENV_API_KEY})")
    parser.add_argument("--model", help=f"served model name (default ${ENV_MODEL}, else {DEFAULT_MODEL})")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per request")
    parser.add_argument(
        "--policy",
        type=Path,
        metavar="FILE",
        help="a guard_policy.yaml (or a directory holding one) to check against, usually with --model the adapter "
        "trained on it; default: the model's published policy",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_SCREEN_CONCURRENCY,
        help=f"checks in flight per URL (default {DEFAULT_SCREEN_CONCURRENCY})",
    )
    add_check_flags(parser)
    parser.add_argument(
        "--explain", action="store_true", help="add each verdict's explanation from the published policy"
    )
    parser.add_argument("--parquet", action="store_true", help="also write verdicts.parquet (needs pyarrow)")
    parser.add_argument("--fresh", action="store_true", help="start over; the old results log is kept beside it")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_screen)


def run_screen(args: argparse.Namespace, out: TextIO, err: TextIO, make_client: ClientFactory | None = None) -> int:
    """Run `guard screen`; `make_client(url, **kwargs)` builds each replica's client (tests pass fakes)."""
    make_client = make_client or AsyncGuardClient
    if args.concurrency < 1:
        print("error: --concurrency must be at least 1", file=err)
        return 2
    # One --NAME-column flag per column.
    columns = Columns(**{column.name: getattr(args, f"{column.name}_column") for column in fields(Columns)})
    try:
        policy = None if args.policy is None else GuardPolicy.load(args.policy)
        fmt = InputFormat(args.format) if args.format else None
        loaded = read_input(args.input, fmt, columns, tuple(args.keep))
    except (ScreenInputError, GuardPolicyError) as exc:
        print(f"error: {exc}", file=err)
        return 2
    for problem in loaded.problems[:PRINTED_PROBLEMS]:
        print(f"skipped {args.input}:{problem.row}: {problem.message}", file=err)
    if len(loaded.problems) > PRINTED_PROBLEMS:
        print(f"… {len(loaded.problems)} rows skipped in all (listed in summary.json)", file=err)
    options = check_options(args)
    urls = args.url or [os.environ.get(ENV_URL)]
    kwargs: dict[str, Any] = {"api_key": args.api_key, "model": args.model, "timeout": args.timeout}
    if policy is not None:
        kwargs["policy"] = policy

    async def go() -> Any:
        clients = [make_client(url, **kwargs) for url in urls]
        try:
            return await screen(
                clients,
                loaded,
                args.out,
                options=options,
                concurrency=args.concurrency,
                parquet=args.parquet,
                explained=args.explain,
                fresh=args.fresh,
                progress=not args.no_progress,
                policy=kwargs.get("policy", DEFAULT_POLICY),
            )
        finally:
            for client in clients:
                await client.aclose()

    try:
        result = asyncio.run(go())
    except KeyboardInterrupt:
        print(f"\ninterrupted: every finished check is in {args.out}; rerun the same command to resume", file=err)
        return 130
    except (RunSetupError, ScreenSetupError, GuardError) as exc:
        print(f"error: {exc}", file=err)
        return 1
    except OSError as exc:  # the output directory cannot be written (full disk, permissions)
        print(f"error: {exc}; every finished check is in {args.out}; rerun the same command to resume", file=err)
        return 2
    summary = result.summary
    if summary["endpoint"]["standin"]:
        print(f"warning: {STANDIN_WARNING}", file=err)
    for warning in summary["warnings"]:
        print(f"warning: {warning}", file=err)
    for kind, path in result.written.items():
        print(f"{kind}: {path}", file=out)
    rows = summary["rows"]
    print(
        f"{rows['with_record']} rows: {rows['decided']} decided, {rows['undecided']} undecided; "
        f"{result.stats.checked} checked this run at {result.stats.rate:.1f} checks/s",
        file=err,
    )
    return 1 if rows["to_retry"] or rows["pending"] else 0
