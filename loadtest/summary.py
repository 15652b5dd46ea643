"""Read a locust run's CSV files into one summary, find the saturation point, judge the SLO.

Pure functions over the files locust writes (`<prefix>_stats.csv`, `_stats_history.csv` with
`--csv-full-history`, `_failures.csv`), so they work the same for a local and a distributed run
(the master writes the files) and are tested without a server.

Locust's own `Aggregated` row mixes the `TTFT` entries in with the checks; the summary counts
checks and time-to-first-token apart.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AGGREGATED = "Aggregated"
#: Request type of the time-to-first-token entries the locustfile records next to streamed checks.
TTFT = "TTFT"
#: Start of the failure message of a check whose output is not a verdict.
PARSE_FAILURE = "verdict parse failure"
#: Reason prefix of a gateway answer that is not the documented shape (counted with the parse failures).
FORMAT_FAILURE = "response format failure"
#: A step reaching this share of the best step's throughput counts as saturated.
SATURATION_SHARE = 0.9


@dataclass(frozen=True)
class Slo:
    """Service-level objective of a run: every check type's p95 and the failure ratio of all checks."""

    p95_ms: float | None = None
    max_failure_ratio: float | None = None
    ttft_p95_ms: float | None = None

    @property
    def empty(self) -> bool:
        return self.p95_ms is None and self.max_failure_ratio is None and self.ttft_p95_ms is None


def _read(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _number(text: str | None) -> float | None:
    if text in (None, "", "N/A"):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def _latency(text: str | None) -> float | None:
    """A percentile cell: locust writes 0 where its window holds no sample; no check takes 0 ms."""
    value = _number(text)
    return value if value is not None and value > 0 else None


def _percentiles(row: dict[str, str]) -> dict[str, float | None]:
    return {f"p{key.rstrip('%')}_ms": _latency(row.get(key)) for key in ("50%", "90%", "95%", "99%")}


def request_stats(stats_rows: list[dict[str, str]], failure_rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """One entry per request type (locust entry), with its parse failures counted apart."""
    parse_failures: dict[tuple[str, str], int] = {}
    for row in failure_rows:
        if PARSE_FAILURE in row.get("Error", "") or FORMAT_FAILURE in row.get("Error", ""):
            key = (row["Method"], row["Name"])
            parse_failures[key] = parse_failures.get(key, 0) + int(row["Occurrences"])
    entries = []
    for row in stats_rows:
        if row["Name"] == AGGREGATED:
            continue
        entries.append(
            {
                "type": row["Type"],
                "name": row["Name"],
                "kind": "ttft" if row["Type"] == TTFT else "check",
                "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "parse_failures": parse_failures.get((row["Type"], row["Name"]), 0),
                "per_s": _number(row["Requests/s"]) or 0.0,
                "avg_ms": _number(row["Average Response Time"]),
                "max_ms": _number(row["Max Response Time"]),
                **_percentiles(row),
            }
        )
    return entries


def check_totals(entries: list[dict[str, Any]]) -> dict[str, Any]:
    checks = [e for e in entries if e["kind"] == "check"]
    requests = sum(e["requests"] for e in checks)
    failures = sum(e["failures"] for e in checks)
    return {
        "requests": requests,
        "failures": failures,
        "parse_failures": sum(e["parse_failures"] for e in checks),
        "failure_ratio": failures / requests if requests else 0.0,
        "checks_per_s": sum(e["per_s"] for e in checks),
    }


def step_stats(history_rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Per plateau of the ramp (consecutive seconds at one user count): check throughput and latency.

    Throughput is exact (difference of cumulative counts over the plateau); percentiles are locust's
    current-window values (about the last 10 s) at the plateau's last second.
    """
    # Every second has an Aggregated row (user count); per-entry rows appear once an entry exists.
    users_at: dict[int, int] = {}
    by_second: dict[int, dict[str, dict[str, str]]] = {}
    for row in history_rows:
        second = int(row["Timestamp"])
        users_at[second] = int(row["User Count"])
        entries = by_second.setdefault(second, {})
        if row["Name"] != AGGREGATED and row["Type"] != TTFT:
            entries[f"{row['Type']} {row['Name']}"] = row
    seconds = sorted(users_at)

    def counts(second: int | None) -> dict[str, tuple[int, int]]:
        rows = by_second.get(second, {}) if second is not None else {}
        return {k: (int(r["Total Request Count"]), int(r["Total Failure Count"])) for k, r in rows.items()}

    plateaus: list[list[int]] = []
    for second in seconds:
        if plateaus and users_at[plateaus[-1][-1]] == users_at[second]:
            plateaus[-1].append(second)
        else:
            plateaus.append([second])
    steps = []
    previous: int | None = None  # the last second before the plateau
    for plateau in plateaus:
        end = plateau[-1]
        if users_at[end] > 0 and len(plateau) >= 2:
            start = previous if previous is not None else plateau[0] - 1
            now, before = counts(end), counts(previous)
            done = {k: now[k][0] - before.get(k, (0, 0))[0] for k in now}
            failed = sum(now[k][1] - before.get(k, (0, 0))[1] for k in now)
            duration = end - start
            steps.append(
                {
                    "users": users_at[end],
                    "seconds": duration,
                    "checks": sum(done.values()),
                    "failures": failed,
                    "checks_per_s": sum(done.values()) / duration,
                    # An entry with nothing completed in the plateau has no latency of its own there.
                    "latency": {
                        name: {"p50_ms": _latency(row.get("50%")), "p95_ms": _latency(row.get("95%"))}
                        if done[name] > 0
                        else {"p50_ms": None, "p95_ms": None}
                        for name, row in sorted(by_second[end].items())
                    },
                }
            )
        previous = end
    return steps


def saturation(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The fewest users that reach `SATURATION_SHARE` of the best step's checks/s.

    `reached` is true when at least one larger step followed without beating that share by much,
    i.e. the ramp went past the knee; otherwise the ramp ended before the server saturated.
    """
    if not steps:
        return {"peak_checks_per_s": 0.0, "knee_users": None, "reached": False, "last_step_gain": None}
    peak = max(s["checks_per_s"] for s in steps)
    knee_index = next(i for i, s in enumerate(steps) if s["checks_per_s"] >= SATURATION_SHARE * peak)
    last, before = steps[-1]["checks_per_s"], steps[-2]["checks_per_s"] if len(steps) > 1 else 0.0
    return {
        "peak_checks_per_s": peak,
        "knee_users": steps[knee_index]["users"],
        "reached": knee_index < len(steps) - 1 and peak > 0,
        # checks/s of the last step over the step before: how much the last added users still bought
        "last_step_gain": round(last / before, 3) if before > 0 else None,
    }


def judge_slo(entries: list[dict[str, Any]], totals: dict[str, Any], slo: Slo) -> dict[str, Any]:
    """Compare the run with its SLO; `passed` is false on any violation, or with no checks at all."""
    violations = []
    if slo.p95_ms is not None:
        for entry in entries:
            if entry["kind"] == "check" and (entry["p95_ms"] is None or entry["p95_ms"] > slo.p95_ms):
                violations.append(f"{entry['name']}: p95 {entry['p95_ms']} ms > {slo.p95_ms:g} ms")
    if slo.ttft_p95_ms is not None:
        for entry in entries:
            if entry["kind"] == "ttft" and (entry["p95_ms"] is None or entry["p95_ms"] > slo.ttft_p95_ms):
                violations.append(f"{entry['name']} TTFT: p95 {entry['p95_ms']} ms > {slo.ttft_p95_ms:g} ms")
    if slo.max_failure_ratio is not None and totals["failure_ratio"] > slo.max_failure_ratio:
        violations.append(f"failure ratio {totals['failure_ratio']:.4f} > {slo.max_failure_ratio:g}")
    if not slo.empty and totals["requests"] == 0:
        violations.append("no check completed")
    return {
        "p95_ms": slo.p95_ms,
        "ttft_p95_ms": slo.ttft_p95_ms,
        "max_failure_ratio": slo.max_failure_ratio,
        "passed": not violations,
        "violations": violations,
    }


def summarize(prefix: Path, slo: Slo = Slo()) -> dict[str, Any]:
    """The summary of the run whose locust CSV files start with `prefix` (e.g. results/.../locust)."""
    entries = request_stats(_read(Path(f"{prefix}_stats.csv")), _read(Path(f"{prefix}_failures.csv")))
    totals = check_totals(entries)
    steps = step_stats(_read(Path(f"{prefix}_stats_history.csv")))
    return {
        "requests": entries,
        "checks": totals,
        "steps": steps,
        "saturation": saturation(steps),
        "slo": judge_slo(entries, totals, slo),
    }
