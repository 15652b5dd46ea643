"""The eval report: scored as a plain dict (`_score`), rendered as markdown section by section
(`_markdown`), drawn as a chart (`_chart`) and written here."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from guard_eval.report._chart import write_chart
from guard_eval.report._markdown import render_markdown
from guard_eval.report._score import STANDIN_WARNING, DatasetRun, build_report, score_dataset

__all__ = [
    "STANDIN_WARNING",
    "DatasetRun",
    "build_report",
    "render_markdown",
    "score_dataset",
    "write_chart",
    "write_report",
]


def write_report(report: Mapping[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write report.md, report.json and f1.png into out_dir; returns what was written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {"json": out_dir / "report.json", "markdown": out_dir / "report.md"}
    written["json"].write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    markdown = render_markdown(report)
    chart = out_dir / "f1.png"
    if write_chart(report, chart):
        written["chart"] = chart
        markdown += "\n![F1 ours vs published](f1.png)\n"
    else:
        markdown += "\n_No chart: matplotlib is not installed._\n"
    written["markdown"].write_text(markdown, encoding="utf-8")
    return written
