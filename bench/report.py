"""The one report writer of every benchmark: `<stem>.json` (the result, with the machine's facts), `<stem>.md`
(a header naming the benchmark, its command and the machine, then the benchmark's own body) and `<stem>.png`
(the benchmark's plot under the same header)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.machine import machine_facts, machine_line

#: Draws a benchmark's plot: gets a matplotlib Figure, adds its axes to it.
Plot = Callable[[Any], None]


def header(title: str, command: str, result: dict[str, Any]) -> str:
    return f"# {title}\n\nMeasured by `{command}` on {machine_line(result['machine'])}."


def write_report(
    out: Path,
    stem: str,
    result: dict[str, Any],
    *,
    title: str,
    command: str,
    body: str,
    plot: Plot | None = None,
    figsize: tuple[float, float] = (8, 4),
) -> list[Path]:
    """Write the three files to `out` (created); `result` gains `machine` (this machine's facts) unless it has
    them. `body` is the markdown under the header; the PNG is linked at its end. Returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    result.setdefault("machine", machine_facts())
    paths = [out / f"{stem}.json", out / f"{stem}.md"]
    paths[0].write_text(json.dumps(result, indent=2) + "\n")
    text = header(title, command, result) + "\n\n" + body.strip("\n") + "\n"
    if plot is not None:
        paths.append(out / f"{stem}.png")
        text += f"\n![{title}]({stem}.png)\n"
        _plot(paths[2], plot, figsize, f"{title}: {command} on {machine_line(result['machine'])}")
    paths[1].write_text(text)
    return paths


def _plot(path: Path, draw: Plot, figsize: tuple[float, float], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=figsize)
    try:
        draw(fig)
        fig.suptitle(title, fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
