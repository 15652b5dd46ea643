"""Reproduce the published Qwen3Guard-Gen benchmark and measure false positives against any guard endpoint.

    python -m guard_client.eval --url http://localhost:8000 --datasets xstest_prompt jbb_benign --limit 50

Datasets are JSONL files in the schema of `shared/data/external/`; results are appended to
`<out>/results.jsonl` as they arrive, so rerunning an interrupted command resumes it. The report
(`report.md`, `report.json`, `f1.png`) gives precision, recall and F1 in strict and loose mode,
refusal F1, false-positive rates on benign sets, per-category counts, failures and latency, and
marks every F1 more than 2 points from the published number.
"""

from guard_client import percentile
from guard_client.eval._datasets import (
    LABELS,
    REGISTRY,
    DatasetSpec,
    EvalItem,
    InputProblem,
    LoadedDataset,
    Task,
    load_dataset,
    resolve_datasets,
    spread,
)
from guard_client.eval._evaluate import EvalConfig, EvalSetupError, evaluate
from guard_client.eval._metrics import Confusion
from guard_client.eval._report import DatasetRun, build_report, render_markdown, score_dataset, write_report
from guard_client.eval._runner import Outcome, ResultRecord, ResultsLog, pending_items, read_results, run_items

__all__ = [
    "LABELS",
    "REGISTRY",
    "Confusion",
    "DatasetRun",
    "DatasetSpec",
    "EvalConfig",
    "EvalItem",
    "EvalSetupError",
    "InputProblem",
    "LoadedDataset",
    "Outcome",
    "ResultRecord",
    "ResultsLog",
    "Task",
    "build_report",
    "evaluate",
    "load_dataset",
    "pending_items",
    "percentile",
    "read_results",
    "render_markdown",
    "resolve_datasets",
    "run_items",
    "score_dataset",
    "spread",
    "write_report",
]
