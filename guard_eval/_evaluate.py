"""One evaluation: load the datasets, check what is not done yet, score everything, write the report."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from guard_client import AsyncGuardClient
from guard_eval._datasets import (
    default_data_dir,
    default_published_path,
    load_dataset,
    resolve_datasets,
    spread,
)
from guard_eval._metrics import DEFAULT_TOLERANCE_POINTS
from guard_eval._runner import read_results, run_items
from guard_eval.report import DatasetRun, build_report, write_report

DEFAULT_OUT_DIR = Path("eval/results")
DEFAULT_EVAL_CONCURRENCY = 8
RESULTS_FILE, MANIFEST_FILE = "results.jsonl", "run.json"


class EvalSetupError(RuntimeError):
    """The run cannot start as asked; the message says what to change."""


@dataclass(frozen=True)
class EvalConfig:
    datasets: Sequence[str] = ("all",)
    out_dir: Path = DEFAULT_OUT_DIR
    limit: int | None = None
    concurrency: int = DEFAULT_EVAL_CONCURRENCY
    constrain: bool = False
    #: Start over: set the previous results file aside instead of resuming from it.
    fresh: bool = False
    data_dir: Path = field(default_factory=default_data_dir)
    published_path: Path | None = field(default_factory=default_published_path)
    tolerance: float = DEFAULT_TOLERANCE_POINTS
    progress: bool = False


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def _check_manifest(out_dir: Path, manifest: dict[str, Any], fresh: bool) -> None:
    """Results from one endpoint and decoding mode must never be mixed with another's."""
    results, path = out_dir / RESULTS_FILE, out_dir / MANIFEST_FILE
    if fresh and results.exists():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        results.rename(out_dir / f"results.{stamp}.jsonl")
    elif results.exists() and path.exists():
        previous = json.loads(path.read_text(encoding="utf-8"))
        differs = [k for k in ("root", "constrain") if previous.get(k) != manifest[k]]
        if differs:
            raise EvalSetupError(
                f"{results} holds results for {', '.join(f'{k}={previous.get(k)!r}' for k in differs)}, "
                f"not {', '.join(f'{k}={manifest[k]!r}' for k in differs)}; pass --fresh to start over "
                "(the old results are kept beside it) or --out for another directory"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


async def evaluate(
    client: AsyncGuardClient, config: EvalConfig, say: Callable[[str], None] = _stderr
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Run the eval with `client` (which must raise on failure, its default) and write the report.

    Returns the report and the files written. Interrupting it loses nothing: rerun to resume.
    """
    try:
        chosen = resolve_datasets(config.datasets, config.data_dir)
    except ValueError as exc:
        raise EvalSetupError(str(exc)) from None
    runs: list[DatasetRun] = []
    for name, path, spec in chosen:
        loaded = load_dataset(name, path, spec.category_field if spec else None)
        for problem in loaded.problems:
            say(f"skipped {problem}")
        if spec and loaded.task not in (None, spec.task):
            raise EvalSetupError(f"{path} holds {loaded.task} items, but {name} is a {spec.task.value} set")
        runs.append(DatasetRun(loaded, spread(loaded.items, config.limit), spec))

    published = None
    if config.published_path is not None:
        if config.published_path.is_file():
            published = json.loads(config.published_path.read_text(encoding="utf-8"))
        else:
            say(f"no published results at {config.published_path}: the report will not compare F1")

    info = await client.server_info()
    if info.is_standin:
        say("!! the endpoint serves the random-weight STAND-IN: the F1 values will be meaningless !!")
    _check_manifest(
        config.out_dir,
        {"url": client.base_url, "model": info.model, "root": info.root, "constrain": config.constrain},
        config.fresh,
    )
    results = config.out_dir / RESULTS_FILE
    items = [item for run in runs for item in run.selected]
    checked = await run_items(
        client, items, results, concurrency=config.concurrency, constrain=config.constrain, progress=config.progress
    )
    say(f"checked {checked} items; {len(items) - checked} already had a result in {results}")
    report = build_report(
        runs,
        read_results(results),
        url=client.base_url,
        info=info,
        constrain=config.constrain,
        published=published,
        limit=config.limit,
        tolerance=config.tolerance,
        results_path=str(results),
    )
    return report, write_report(report, config.out_dir)
