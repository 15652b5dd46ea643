"""Markdown cells and tables shared by the report's sections."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def section(title: str, header: Sequence[str], rows: Sequence[Sequence[str]], note: str = "") -> list[str]:
    """A `## title` section: the note (when there is one), then the table."""
    return [f"## {title}", "", *([note, ""] if note else []), *table(header, rows)]


def gap_cell(comparison: Mapping[str, Any] | None, mode: str) -> str:
    if not comparison or mode not in comparison:
        return "–"
    c = comparison[mode]
    if c["gap"] is None:
        return f"{c['published_f1']:.1f} (n/a)"
    mark = " **⚠ >2**" if c["over_tolerance"] else ""
    return f"{c['published_f1']:.1f} ({c['gap']:+.1f}){mark}"
