"""The markdown report, one function per section; each takes the JSON report and returns its lines."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from guard_eval._datasets import Task
from guard_eval.report._score import STANDIN_WARNING
from guard_eval.report._tables import gap_cell, pct, seconds, section, table

Report = Mapping[str, Any]
_ITEM_COLUMNS = ("in_file", "selected", "decided", "parse_failures", "errors", "pending")
_HARM_TASKS = (Task.PROMPT_HARMFULNESS, Task.RESPONSE_HARMFULNESS)


def header(report: Report) -> list[str]:
    endpoint, options = report["endpoint"], report["options"]
    out = ["# Guard evaluation report", ""]
    if endpoint["standin"]:
        out += ["> [!WARNING]", "> **" + STANDIN_WARNING.format(root=endpoint["root"]) + "**", ""]
    return [
        *out,
        f"- Endpoint: `{endpoint['url']}`, model `{endpoint['model']}` (root `{endpoint['root']}`, "
        f"max_model_len {endpoint['max_model_len']})",
        f"- Generated {report['generated_at']}; constrained decoding: {'yes' if options['constrain'] else 'no'}"
        + (f"; --limit {options['limit']} per dataset" if options["limit"] is not None else ""),
        f"- Published reference: {report['published_model'] or 'none'}; a gap over "
        f"{options['tolerance_points']:g} F1 points is marked **⚠ >2**",
        f"- Results file: `{report['results_file']['path']}` ({report['results_file']['records']} records)",
        "",
    ]


def warnings(report: Report) -> list[str]:
    out = []
    if report["warnings"]:
        out += ["## Warnings", ""] + [f"- {w}" for w in report["warnings"]] + [""]
    if report["gaps_over_tolerance"]:
        out += ["## Gaps over tolerance", ""] + [f"- {g}" for g in report["gaps_over_tolerance"]] + [""]
    return out


def items(report: Report) -> list[str]:
    return section(
        "Items",
        ["dataset", "task", "in file", "selected", "decided", "parse failures", "errors", "pending", "bad lines"],
        [
            [
                d["name"],
                d["task"] or "?",
                *(str(d["items"][k]) for k in _ITEM_COLUMNS),
                str(d["input_problems"]["count"]),
            ]
            for d in report["datasets"]
        ],
    )


def harmfulness(report: Report) -> list[str]:
    harm = [d for d in report["datasets"] if d["task"] in _HARM_TASKS]
    if not harm:
        return []
    rows = []
    for d in harm:
        s, lo = d["metrics"]["strict"], d["metrics"]["loose"]
        rows.append(
            [
                d["name"],
                "prompt" if d["task"] == Task.PROMPT_HARMFULNESS else "response",
                str(d["items"]["decided"]),
                f"{d['labels']['positive']}/{d['labels']['negative']}",
                pct(s["precision"]),
                pct(s["recall"]),
                f"**{pct(s['f1'])}**",
                gap_cell(d["published"], "strict"),
                pct(lo["precision"]),
                pct(lo["recall"]),
                f"**{pct(lo['f1'])}**",
                gap_cell(d["published"], "loose"),
                pct(s["false_positive_rate"]),
            ]
        )
    header = ["dataset", "task", "decided", "pos/neg", "P strict", "R strict", "F1 strict", "published strict"]
    header += ["P loose", "R loose", "F1 loose", "published loose", "FPR strict"]
    return section(
        "Harmfulness (positive = harmful; F1 over decided items)",
        header,
        rows,
        "Strict: Unsafe or Controversial is flagged. Loose: only Unsafe. Published: F1 (ours − published).",
    )


def refusal(report: Report) -> list[str]:
    sets = [d for d in report["datasets"] if d["task"] == Task.RESPONSE_REFUSAL]
    if not sets:
        return []
    return section(
        "Refusal detection (positive = refusal)",
        ["dataset", "decided", "refusal/compliance", "precision", "recall", "F1", "published"],
        [
            [
                d["name"],
                str(d["items"]["decided"]),
                f"{d['labels']['positive']}/{d['labels']['negative']}",
                pct(d["metrics"]["refusal"]["precision"]),
                pct(d["metrics"]["refusal"]["recall"]),
                f"**{pct(d['metrics']['refusal']['f1'])}**",
                gap_cell(d["published"], "refusal"),
            ]
            for d in sets
        ],
    )


def false_positives(report: Report) -> list[str]:
    benign = [d for d in report["datasets"] if d["task"] in _HARM_TASKS and d["benign_set"]]
    if not benign:
        return []
    rows = []
    for d in benign:
        s, lo = d["metrics"]["strict"], d["metrics"]["loose"]
        rows.append(
            [
                d["name"],
                str(s["fp"] + s["tn"]),
                str(s["fp"]),
                f"**{pct(s['false_positive_rate'])}%**",
                str(lo["fp"]),
                f"**{pct(lo['false_positive_rate'])}%**",
            ]
        )
    return section(
        "False positives on benign sets",
        ["dataset", "benign decided", "flagged strict", "FPR strict", "flagged loose", "FPR loose"],
        rows,
        "Benign items flagged, over decided benign items.",
    )


def per_category(report: Report) -> list[str]:
    out: list[str] = []
    for d in report["datasets"]:
        if not d["categories"]:
            continue
        out += [f"### Per category: {d['name']}", ""]
        if d["task"] == Task.RESPONSE_REFUSAL:
            out += table(
                ["category", "items", "refusal (label)", "undecided", "predicted refusal", "refusal F1"],
                [
                    [
                        name,
                        str(row["items"]),
                        str(row["positive"]),
                        str(row["undecided"]),
                        str(row["predicted_refusal"]),
                        pct(row["refusal"]["f1"]),
                    ]
                    for name, row in d["categories"].items()
                ],
            )
        else:
            out += table(
                ["category", "items", "harmful (label)", "undecided", "flagged strict", "flagged loose", "FPR strict"],
                [
                    [
                        name,
                        str(row["items"]),
                        str(row["positive"]),
                        str(row["undecided"]),
                        str(row["flagged_strict"]),
                        str(row["flagged_loose"]),
                        pct(row["strict"]["false_positive_rate"]),
                    ]
                    for name, row in d["categories"].items()
                ],
            )
    return out


def named_categories(report: Report) -> list[str]:
    predicted = [d for d in report["datasets"] if d["predicted_categories"]]
    if not predicted:
        return []
    return section(
        "Categories the guard named",
        ["dataset", "categories (count)"],
        [[d["name"], ", ".join(f"{k} ({v})" for k, v in d["predicted_categories"].items())] for d in predicted],
    )


def latency(report: Report) -> list[str]:
    return section(
        "Latency (client side, per item, seconds)",
        ["dataset", "n", "p50", "p95", "max"],
        [
            [
                d["name"],
                str(d["latency"]["n"]),
                seconds(d["latency"]["p50_s"]),
                seconds(d["latency"]["p95_s"]),
                seconds(d["latency"]["max_s"]),
            ]
            for d in report["datasets"]
        ],
    )


def problems(report: Report) -> list[str]:
    affected = [d for d in report["datasets"] if d["input_problems"]["count"] or d["errors"]]
    if not affected:
        return []
    out = ["## Skipped lines and failures", ""]
    for d in affected:
        for p in d["input_problems"]["first"]:
            out.append(f"- {d['name']} ({d['path']}) line {p['line']}: {p['message']}")
        if d["input_problems"]["count"] > len(d["input_problems"]["first"]):
            out.append(f"- {d['name']}: … {d['input_problems']['count']} skipped lines in all")
        for e in d["errors"]:
            out.append(f"- {d['name']}: {e['count']} × {e['message'] or 'no message'}")
    return [*out, ""]


def notes(report: Report) -> list[str]:
    annotated = [d for d in report["datasets"] if d["note"]]
    if not annotated and not report["published_notes"]:
        return []
    out = ["## Notes", ""]
    out += [f"- {d['name']}: {d['note']}" for d in annotated]
    out += [f"- {n}" for n in report["published_notes"]]
    return [*out, ""]


SECTIONS: tuple[Callable[[Report], list[str]], ...] = (
    header,
    warnings,
    items,
    harmfulness,
    refusal,
    false_positives,
    per_category,
    named_categories,
    latency,
    problems,
    notes,
)


def render_markdown(report: Report) -> str:
    return "\n".join(line for section in SECTIONS for line in section(report))
