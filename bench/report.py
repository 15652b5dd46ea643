"""The one report writer of every benchmark: `<stem>.json` (the result, with the machine's facts), `<stem>.md`
(a header naming the benchmark, its command and the machine, then the benchmark's own body) and `<stem>.png`
(the benchmark's plot under the same header). A benchmark declares its `Report` once and writes through it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.machine import machine_facts, machine_line

#: Draws a benchmark's plot: gets a matplotlib Figure, adds its axes to it.
Plot = Callable[[Any], None]


@dataclass(frozen=True)
class Report:
    stem: str  # the files' name
    title: str
    command: str  # how to reproduce it
    figsize: tuple[float, float] = (8, 4)

    def header(self, result: dict[str, Any]) -> str:
        return f"# {self.title}\n\nMeasured by `{self.command}` on {machine_line(result['machine'])}."

    def write(self, out: Path, result: dict[str, Any], body: str, plot: Plot | None = None) -> list[Path]:
        """Write the files to `out` (created); `result` gains `machine` (this machine's facts) unless it has
        them. `body` is the markdown under the header; the PNG is linked at its end. Returns the paths."""
        out.mkdir(parents=True, exist_ok=True)
        result.setdefault("machine", machine_facts())
        paths = [out / f"{self.stem}.json", out / f"{self.stem}.md"]
        paths[0].write_text(json.dumps(result, indent=2) + "\n")
        text = self.header(result) + "\n\n" + body.strip("\n") + "\n"
        if plot is not None:
            paths.append(out / f"{self.stem}.png")
            text += f"\n![{self.title}]({self.stem}.png)\n"
            _plot(paths[2], plot, self.figsize, f"{self.title}: {self.command} on {machine_line(result['machine'])}")
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
