"""Screen a whole dataset: check every row through `ResumableRun`, then write one verdict per row and a summary.

Files in the output directory: `results.jsonl` (the append-only log, the run's state), `run.json`
(its manifest), `verdicts.jsonl` (one record per row, in input order, written when the run ends;
`verdicts.parquet` too when asked), and `summary.json`, `summary.md`, `summary.png`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from guard_client._client import AsyncGuardClient
from guard_client._explain import explain
from guard_client._flows import ServerInfo
from guard_client._guard_policy import DEFAULT_POLICY, GuardPolicy
from guard_client._labels import Safety, Strictness
from guard_client._runner import CheckRecord, ResumableRun, RunManifest, RunStats
from guard_client._screen_input import PARQUET_HINT, ScreenInput
from guard_client._stats import percentile

VERDICTS_FILE, VERDICTS_PARQUET = "verdicts.jsonl", "verdicts.parquet"
SUMMARY_JSON, SUMMARY_MD, SUMMARY_PNG = "summary.json", "summary.md", "summary.png"
UNDECIDED = "undecided"
#: Bad input rows listed by number in the summary (all are counted).
MAX_LISTED_PROBLEMS = 100


class ScreenSetupError(RuntimeError):
    """The replicas cannot be screened against together (they serve different models, or none answers)."""


@dataclass(frozen=True)
class ScreenResult:
    stats: RunStats
    summary: dict[str, Any]
    written: dict[str, Path]


async def common_server_info(clients: Sequence[AsyncGuardClient]) -> tuple[ServerInfo, list[str]]:
    """The model every reachable replica serves, and a warning per replica that did not answer.

    Replicas serving different weights would mix their verdicts in one run: refused.
    """
    from guard_client._errors import GuardError

    infos: dict[str, ServerInfo] = {}
    warnings = []
    for client in clients:
        try:
            infos[client.base_url] = await client.server_info()
        except GuardError as exc:
            warnings.append(f"{client.base_url} did not answer ({exc}); it joins the rotation if it comes back")
    if not infos:
        raise ScreenSetupError("no guard replica answered: " + "; ".join(warnings))
    roots = {(i.model, i.root) for i in infos.values()}
    if len(roots) > 1:
        listing = ", ".join(f"{url}: {i.model} ({i.root})" for url, i in infos.items())
        raise ScreenSetupError(f"the replicas serve different models, whose verdicts must not be mixed: {listing}")
    return next(iter(infos.values())), warnings


def _percentiles(values: list[float]) -> dict[str, float | None]:
    return {
        "p50_s": percentile(values, 50),
        "p95_s": percentile(values, 95),
        "p99_s": percentile(values, 99),
        "max_s": max(values, default=None),
    }


def _rate(count: int, total: int) -> float | None:
    return None if total == 0 else count / total


def build_summary(
    loaded: ScreenInput,
    records: Sequence[CheckRecord],
    stats: RunStats,
    info: ServerInfo,
    manifest: RunManifest,
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """Counts over the rows' latest records; throughput over this run. Pure: no I/O."""
    decided = [r for r in records if r.decided]
    severity = Counter(r.safety.value if r.safety else UNDECIDED for r in records)
    categories = Counter(str(c) for r in decided for c in r.categories)
    flagged = {
        s.value: {"count": n, "rate": _rate(n, len(decided))}
        for s in Strictness
        for n in [sum(r.flagged(s) for r in decided)]
    }
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "input": {
            "path": str(loaded.path),
            "kind": loaded.kind.value,
            "columns": loaded.columns,
            "rows": loaded.rows,
            "checkable": len(loaded.items),
            "rejected": len(loaded.problems),
            "rejected_rows": [{"row": p.row, "message": p.message} for p in loaded.problems[:MAX_LISTED_PROBLEMS]],
        },
        "endpoint": {"model": info.model, "root": info.root, "standin": info.is_standin},
        "options": manifest.options,
        "rows": {
            "with_record": len(records),
            "pending": len(loaded.items) - len(records),
            "decided": len(decided),
            "undecided": len(records) - len(decided),
            # Undecided for a reason that may pass (connection, HTTP, timeout): the next run checks them again.
            "to_retry": sum(r.retry for r in records),
        },
        "severity": {s: severity.get(s, 0) for s in [*(x.value for x in Safety), UNDECIDED]},
        "categories": dict(categories.most_common()),
        # Over decided rows; an undecided row is never counted as safe (see rows.undecided and errors).
        "flagged": flagged,
        "errors": dict(Counter(r.error_type or "" for r in records if not r.decided).most_common()),
        "throughput": {
            "checked_this_run": stats.checked,
            "already_done": stats.already_done,
            "wall_s": round(stats.wall_s, 3),
            "checks_per_s": round(stats.rate, 2),
            "by_replica": dict(stats.by_replica),
            "handed_back": stats.handbacks,
        },
        "latency": _percentiles([r.latency_s for r in records]),
        "warnings": list(warnings),
    }


def render_summary(summary: Mapping[str, Any]) -> str:
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}%"

    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{1000 * value:.0f} ms"

    inp, rows, tp, lat = summary["input"], summary["rows"], summary["throughput"], summary["latency"]
    out = ["# Screening summary", ""]
    if summary["endpoint"]["standin"]:
        out += ["> **STAND-IN MODEL: random weights; every verdict below is random and means nothing.**", ""]
    out += [
        f"- Input: `{inp['path']}` ({inp['kind']}): {inp['rows']} rows, {inp['checkable']} checkable, "
        f"{inp['rejected']} rejected",
        f"- Model: `{summary['endpoint']['model']}` (root `{summary['endpoint']['root']}`); options: "
        + ", ".join(
            f"{k}={v}" for k, v in summary["options"].items() if k in ("constrain", "scores", "verdict_only", "chunk")
        ),
        f"- Rows with a record: {rows['with_record']} ({rows['decided']} decided, {rows['undecided']} undecided); "
        f"pending: {rows['pending']}",
        f"- Flagged (of decided): strict {summary['flagged']['strict']['count']} "
        f"({pct(summary['flagged']['strict']['rate'])}), loose {summary['flagged']['loose']['count']} "
        f"({pct(summary['flagged']['loose']['rate'])})",
        f"- This run: {tp['checked_this_run']} checks in {tp['wall_s']:.1f} s, **{tp['checks_per_s']:.1f} checks/s**"
        f" ({tp['already_done']} rows were already done; {tp['handed_back']} items handed back by unreachable "
        "replicas)",
        f"- Latency per check: p50 {ms(lat['p50_s'])}, p95 {ms(lat['p95_s'])}, p99 {ms(lat['p99_s'])}, "
        f"max {ms(lat['max_s'])}",
        "",
        "| severity | rows |",
        "|---|--:|",
        *(f"| {k} | {v} |" for k, v in summary["severity"].items()),
        "",
    ]
    if summary["categories"]:
        out += ["| category | rows |", "|---|--:|", *(f"| {k} | {v} |" for k, v in summary["categories"].items()), ""]
    if tp["by_replica"]:
        out += ["| replica | checks this run |", "|---|--:|", *(f"| {k} | {v} |" for k, v in tp["by_replica"].items())]
        out.append("")
    if summary["errors"]:
        out += ["| error | rows |", "|---|--:|", *(f"| {k} | {v} |" for k, v in summary["errors"].items()), ""]
    if inp["rejected"]:
        out += [f"## Rejected rows ({inp['rejected']})", ""]
        out += [f"- row {p['row']}: {p['message']}" for p in inp["rejected_rows"]]
        out.append("")
    if summary["warnings"]:
        out += ["## Warnings", "", *(f"- {w}" for w in summary["warnings"]), ""]
    return "\n".join(out)


def write_chart(summary: Mapping[str, Any], path: Path) -> bool:
    """Rows by severity and by category as a PNG. Returns False (writes nothing) without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1, 2]})
    severity = summary["severity"]
    drawn = left.bar(list(severity), list(severity.values()), color=["#4c9a2a", "#d9a400", "#c0392b", "#888888"])
    left.bar_label(drawn, fontsize=8)
    left.set_title("rows by severity", fontsize=10)
    categories = summary["categories"] or {"(none)": 0}
    drawn = right.barh(list(categories)[::-1], list(categories.values())[::-1])
    right.bar_label(drawn, fontsize=8)
    right.set_title("categories named (decided rows)", fontsize=10)
    title = f"{summary['rows']['with_record']} rows, {summary['throughput']['checks_per_s']:.1f} checks/s this run"
    if summary["endpoint"]["standin"]:
        fig.suptitle("STAND-IN (random weights): verdicts are MEANINGLESS — " + title, color="red", fontsize=10)
    else:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def verdict_rows(
    loaded: ScreenInput,
    records: Mapping[str, CheckRecord],
    explained: bool = False,
    policy: GuardPolicy = DEFAULT_POLICY,
) -> list[dict[str, Any]]:
    """One plain row per input row that has a record, in input order, with both flag readings
    (and, when asked, the explanation of the verdict from the published policy)."""
    out = []
    for work in loaded.items:
        record = records.get(work.id)
        if record is None:
            continue
        row = record.model_dump(mode="json", exclude={"policy"})
        row["flagged_strict"] = record.decided and record.flagged(Strictness.STRICT)
        row["flagged_loose"] = record.decided and record.flagged(Strictness.LOOSE)
        if explained:
            row["explanation"] = explain(record, policy=policy).model_dump(mode="json")
        out.append(row)
    return out


def write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ScreenSetupError(f"--parquet: {PARQUET_HINT}") from None
    pq.write_table(pa.Table.from_pylist(rows), path)


async def screen(
    clients: Sequence[AsyncGuardClient],
    loaded: ScreenInput,
    out_dir: Path,
    *,
    options: Mapping[str, Any],
    concurrency: int,
    parquet: bool = False,
    explained: bool = False,
    fresh: bool = False,
    progress: bool = False,
    policy: GuardPolicy = DEFAULT_POLICY,
) -> ScreenResult:
    """Check every row of `loaded` that has no answer in `out_dir` yet, then write the outputs.

    `policy` is the one the clients check against (it joins the run's identity and explains verdicts).

    Interrupting it (Ctrl-C) loses nothing that was logged: run it again to resume.
    """
    info, warnings = await common_server_info(clients)
    identity = {"input": str(loaded.path.resolve()), "kind": loaded.kind.value, "columns": loaded.columns}
    if not policy.is_default:  # a resumed run must check against the same policy
        identity["policy"] = policy.to_data()
    manifest = RunManifest(model=info.model, root=info.root, options={**options, **identity})
    with ResumableRun(out_dir, manifest, fresh=fresh) as run:
        stats = await run.run(clients, loaded.items, concurrency=concurrency, options=options, progress=progress)
        records = run.log.records
        rows = verdict_rows(loaded, records, explained, policy)
        written = {"results": run.results_path, "verdicts": out_dir / VERDICTS_FILE}
        with written["verdicts"].open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        if parquet:
            written["parquet"] = out_dir / VERDICTS_PARQUET
            write_parquet(rows, written["parquet"])
        ordered = [records[w.id] for w in loaded.items if w.id in records]
        summary = build_summary(loaded, ordered, stats, info, manifest, warnings)
        written["summary_json"] = out_dir / SUMMARY_JSON
        written["summary_json"].write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        markdown = render_summary(summary)
        if write_chart(summary, out_dir / SUMMARY_PNG):
            written["chart"] = out_dir / SUMMARY_PNG
            markdown += f"\n![rows by severity and category]({SUMMARY_PNG})\n"
        written["summary_md"] = out_dir / SUMMARY_MD
        written["summary_md"].write_text(markdown, encoding="utf-8")
    return ScreenResult(stats, summary, written)
