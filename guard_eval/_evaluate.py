"""One evaluation: load the datasets, check what is not done yet, score everything, write the report."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guard_client import AsyncGuardClient
from guard_client.batch import ResumableRun, RunManifest
from guard_eval._datasets import (
    default_data_dir,
    default_published_path,
    load_dataset,
    resolve_datasets,
    spread,
)
from guard_eval._metrics import DEFAULT_TOLERANCE_POINTS
from guard_eval.report import DatasetRun, build_report, write_report

DEFAULT_OUT_DIR = Path("eval/results")
DEFAULT_EVAL_CONCURRENCY = 8


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
    # Results of one model and decoding mode are never mixed with another's (the endpoint may change).
    manifest = RunManifest(model=info.model, root=info.root, options={"constrain": config.constrain})
    work = [item.work for run in runs for item in run.selected]
    with ResumableRun(config.out_dir, manifest, fresh=config.fresh) as run:
        stats = await run.run(
            [client],
            work,
            concurrency=config.concurrency,
            options={"constrain": config.constrain},
            progress=config.progress,
        )
        log, results = run.log, run.results_path
    say(f"checked {stats.checked} items; {stats.already_done} already had a result in {results}")
    report = build_report(
        runs,
        log,
        url=client.base_url,
        info=info,
        constrain=config.constrain,
        published=published,
        limit=config.limit,
        tolerance=config.tolerance,
        results_path=str(results),
    )
    return report, write_report(report, config.out_dir)
