"""The training card (`card.md`, `card.json`) and the evaluation report (`eval.md`, `eval.json`, `eval.png`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from guard_tune._evaluate import SEVERITIES

CARD_JSON = "card.json"
CARD_MD = "card.md"


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def eval_markdown(evaluation: Mapping[str, Any]) -> list[str]:
    base, adapter = evaluation["base"], evaluation["adapter"]
    lines = [
        f"Held-out rows: {adapter['rows']}, through vLLM at {evaluation['url']} "
        f"(base `{evaluation['models']['base']}`, adapter `{evaluation['models']['adapter']}`)."
    ]
    if evaluation.get("warning"):
        lines += ["", f"> **{evaluation['warning']}**"]
    lines += [
        "",
        "Each check as `GuardClient(url, model=..., policy=...)` sends it: the client's render of the policy, "
        "constrained to the policy's grammar.",
    ]
    lines += [
        "",
        *_table(
            ["", "base", "adapter"],
            [
                ["accuracy (verdict)", _fraction(base["accuracy"]), _fraction(adapter["accuracy"])],
                ["accuracy (whole answer)", _fraction(base["exact_accuracy"]), _fraction(adapter["exact_accuracy"])],
                ["decided", str(base["decided"]), str(adapter["decided"])],
                [
                    "false positives on Safe rows, %",
                    _pct(base["safe_false_positive_rate"]),
                    _pct(adapter["safe_false_positive_rate"]),
                ],
                ["flagged F1, %", _pct(base["flagged"]["f1"]), _pct(adapter["flagged"]["f1"])],
            ],
        ),
    ]
    lines += ["", "Per category (precision / recall / F1, %):", ""]
    lines += _table(
        ["category", "base", "adapter"],
        [
            [
                name,
                *(
                    f"{_pct(s['per_category'][name]['precision'])} / {_pct(s['per_category'][name]['recall'])} / "
                    f"{_pct(s['per_category'][name]['f1'])}"
                    for s in (base, adapter)
                ),
            ]
            for name in adapter["per_category"]
        ],
    )
    for side in ("base", "adapter"):
        lines += ["", f"Severities, {side} (rows: labelled, columns: answered):", ""]
        lines += _table(
            ["labelled", *SEVERITIES],
            [
                [gold, *(str(row[p]) for p in SEVERITIES)]
                for gold, row in evaluation[side]["severity_confusion"].items()
            ],
        )
    return lines


def write_eval(evaluation: Mapping[str, Any], out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "eval.json", "md": out / "eval.md", "png": out / "eval.png"}
    paths["json"].write_text(json.dumps(evaluation, indent=2, ensure_ascii=False) + "\n")
    paths["md"].write_text("# Base model against adapter\n\n" + "\n".join(eval_markdown(evaluation)) + "\n")
    _plot(evaluation, paths["png"])
    return paths


def _plot(evaluation: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["accuracy", "whole answer", *(f"F1 {c}" for c in evaluation["adapter"]["per_category"])]

    def values(side: Mapping[str, Any]) -> list[float]:
        f1 = [(m["f1"] or 0.0) / 100 for m in side["per_category"].values()]
        return [side["accuracy"] or 0.0, side["exact_accuracy"] or 0.0, *f1]

    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.38
    xs = range(len(names))
    ax.bar([x - width / 2 for x in xs], values(evaluation["base"]), width, label="base")
    ax.bar([x + width / 2 for x in xs], values(evaluation["adapter"]), width, label="adapter")
    ax.set_xticks(list(xs), names, rotation=15, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_title(
        f"held-out rows: {evaluation['adapter']['rows']}"
        + (" (random-weight stand-in base)" if evaluation.get("standin") else "")
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def card_markdown(card: Mapping[str, Any]) -> str:
    t, data, base = card["training"], card["data"], card["base"]
    lines = [
        f"# Adapter `{card['name']}` for the policy `{card['policy']['name']}`",
        "",
        f"Base model: `{base['model']}` (fingerprint `{base['fingerprint']}`)"
        + (" — **random-weight stand-in: the base's verdicts are random**" if base.get("standin") else ""),
        f"Policy: `{card['policy']['file']}` (sha256 `{card['policy']['sha256'][:16]}`), categories: "
        + ", ".join(card["policy"]["categories"]),
        f"Data: `{data['path']}` (sha256 `{data['sha256'][:16]}`): {data['usable']} usable rows, "
        f"{data['skipped']} skipped; {data['train']} to train, {data['held_out']} held out (seed {card['seed']}).",
        "",
        *_table(["label", "rows"], [[k, str(v)] for k, v in data["counts"].items()]),
        "",
        "## Training",
        "",
        *_table(
            ["LoRA rank", "alpha", "lr", "batch", "steps", "epochs", "seconds", "examples/s", "tokens/s", "final loss"],
            [
                [
                    str(t["rank"]),
                    str(t["alpha"]),
                    f"{t['lr']:g}",
                    str(t["batch"]),
                    str(t["steps"]),
                    _fraction(t["epochs"]),
                    f"{t['seconds']:.0f}",
                    f"{t['examples_per_s']:.1f}",
                    f"{t['tokens_per_s']:.0f}",
                    "-" if t["final_loss"] is None else f"{t['final_loss']:.4f}",
                ]
            ],
        ),
        "",
        f"Device: {t['device']}; loss on the answer tokens only, the LM head computed only there; "
        f"modules: {', '.join(t['target_modules'])}.",
        f"Started {card['started_at']}, finished {card['finished_at']}.",
    ]
    if card.get("evaluation"):
        lines += ["", "## Evaluation: base against adapter", "", *eval_markdown(card["evaluation"])]
    lines += ["", "## Serve it", "", "```", *card["serve"], "```"]
    return "\n".join(lines) + "\n"


def write_card(card: Mapping[str, Any], out: Path) -> None:
    (out / CARD_JSON).write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    (out / CARD_MD).write_text(card_markdown(card))
