"""The F1 chart (ours vs published) as a PNG; matplotlib is imported only here, and only when drawing."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def write_chart(report: Mapping[str, Any], path: Path) -> bool:
    """F1 ours vs published per dataset as a PNG. Returns False (and writes nothing) without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars: list[tuple[str, float, float | None]] = []
    for d in report["datasets"]:
        for metric_name, metric in d["metrics"].items():
            if metric["f1"] is not None:
                reference = (d["published"] or {}).get(metric_name, {}).get("published_f1")
                bars.append((f"{d['name']} ({metric_name})", metric["f1"], reference))
    # The chart compares with the published numbers; sets without one only show when none has one.
    if any(reference is not None for *_, reference in bars):
        bars = [bar for bar in bars if bar[2] is not None]
    labels = [label for label, _, _ in bars]
    ours = [value for _, value, _ in bars]
    theirs = [reference for *_, reference in bars]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(labels) + 2), 4.8))
    positions = list(range(len(labels)))
    width = 0.4
    drawn = ax.bar([p - width / 2 for p in positions], ours, width, label="ours")
    ax.bar_label(drawn, fmt="%.1f", fontsize=7)
    published_at = [(p, v) for p, v in zip(positions, theirs, strict=True) if v is not None]
    drawn = ax.bar([p + width / 2 for p, _ in published_at], [v for _, v in published_at], width, label="published")
    ax.bar_label(drawn, fmt="%.1f", fontsize=7)
    ax.set_xticks(positions, labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("F1 (%)")
    ax.set_ylim(0, 110)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    title = f"F1 ours vs published ({report['published_model'] or 'no reference'})"
    if report["endpoint"]["standin"]:
        title = "STAND-IN (random weights): F1 values are MEANINGLESS\n" + title
        ax.set_title(title, color="red", fontsize=10)
    else:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
