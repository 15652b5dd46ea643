"""The locust summary: per-type stats, parse failures, ramp plateaus, saturation and the SLO verdict."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from loadtest.summary import (
    PARSE_FAILURE,
    TTFT,
    Slo,
    check_totals,
    judge_slo,
    request_stats,
    saturation,
    step_stats,
    summarize,
)

PERCENTILES = ["50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"]
STATS_COLUMNS = [
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Median Response Time",
    "Average Response Time",
    "Min Response Time",
    "Max Response Time",
    "Average Content Size",
    "Requests/s",
    "Failures/s",
    *PERCENTILES,
]
HISTORY_COLUMNS = [
    "Timestamp",
    "User Count",
    "Type",
    "Name",
    "Requests/s",
    "Failures/s",
    *PERCENTILES,
    "Total Request Count",
    "Total Failure Count",
    "Total Median Response Time",
    "Total Average Response Time",
    "Total Min Response Time",
    "Total Max Response Time",
    "Total Average Content Size",
]
FAILURE_COLUMNS = ["Method", "Name", "Error", "Occurrences", "First Seen", "Last Seen"]


def stats_row(kind: str, name: str, count: int, failures: int, per_s: float, p50: int, p95: int) -> dict[str, object]:
    row: dict[str, object] = dict.fromkeys(STATS_COLUMNS, 0)
    row.update({"Type": kind, "Name": name, "Request Count": count, "Failure Count": failures, "Requests/s": per_s})
    row.update({"Average Response Time": p50, "Max Response Time": p95 * 2})
    row.update({p: p50 for p in PERCENTILES})
    row.update({"90%": p95, "95%": p95, "99%": p95})
    return row


def history_row(second: int, users: int, kind: str, name: str, total: int, failed: int, p50: int = 100) -> dict:
    row: dict[str, object] = dict.fromkeys(HISTORY_COLUMNS, 0)
    row.update({"Timestamp": second, "User Count": users, "Type": kind, "Name": name})
    row.update({"Total Request Count": total, "Total Failure Count": failed})
    row.update({p: p50 for p in PERCENTILES})
    row["95%"] = p50 * 2
    return row


def write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


STATS = [
    stats_row("POST", "prompt check", 80, 4, 2.0, 900, 1800),
    stats_row("POST", "prompt check (stream)", 20, 1, 0.5, 950, 2000),
    stats_row(TTFT, "prompt check (stream)", 19, 0, 0.5, 300, 600),
    stats_row("POST", "response check", 40, 0, 1.0, 1200, 2500),
    stats_row("", "Aggregated", 159, 5, 4.0, 800, 2400),
]
FAILURES = [
    {
        "Method": "POST",
        "Name": "prompt check",
        "Error": f"CatchResponseError('{PARSE_FAILURE}: no line')",
        "Occurrences": 3,
        "First Seen": "",
        "Last Seen": "",
    },
    {
        "Method": "POST",
        "Name": "prompt check",
        "Error": "CatchResponseError('HTTP 500')",
        "Occurrences": 1,
        "First Seen": "",
        "Last Seen": "",
    },
    {
        "Method": "POST",
        "Name": "prompt check (stream)",
        "Error": f"CatchResponseError('{PARSE_FAILURE}: x')",
        "Occurrences": 1,
        "First Seen": "",
        "Last Seen": "",
    },
]


def as_text(rows: list[dict]) -> list[dict[str, str]]:
    """Rows as csv.DictReader returns them."""
    return [{k: str(v) for k, v in row.items()} for row in rows]


def test_request_stats_keep_types_apart_and_count_parse_failures_per_type() -> None:
    entries = {(e["type"], e["name"]): e for e in request_stats(as_text(STATS), as_text(FAILURES))}
    assert ("", "Aggregated") not in entries
    assert entries[("POST", "prompt check")]["parse_failures"] == 3
    assert entries[("POST", "prompt check")]["failures"] == 4
    assert entries[("POST", "prompt check (stream)")]["parse_failures"] == 1
    assert entries[(TTFT, "prompt check (stream)")]["kind"] == "ttft"
    assert entries[(TTFT, "prompt check (stream)")]["parse_failures"] == 0
    assert entries[("POST", "response check")]["p95_ms"] == 2500


def test_check_totals_leave_out_time_to_first_token() -> None:
    entries = request_stats(as_text(STATS), [])
    totals = check_totals(entries)
    assert totals["requests"] == 140  # 80 + 20 + 40; the 19 TTFT samples are not checks
    assert totals["failures"] == 5
    assert totals["failure_ratio"] == pytest.approx(5 / 140)
    assert totals["checks_per_s"] == pytest.approx(3.5)


def history() -> list[dict[str, str]]:
    rows = [history_row(100, 0, "", "Aggregated", 0, 0)]
    prompt = 0
    for second in range(101, 106):  # 1 user: 2 prompt checks/s
        prompt += 2
        rows += [
            history_row(second, 1, "POST", "prompt check", prompt, 0),
            history_row(second, 1, "", "Aggregated", 0, 0),
        ]
    for stream, second in enumerate(range(106, 111), start=1):  # 2 users: 3 prompt + 1 streamed check/s
        prompt += 3
        rows += [
            history_row(second, 2, "POST", "prompt check", prompt, 1, p50=200),
            history_row(second, 2, "POST", "prompt check (stream)", stream, 0, p50=250),
            history_row(second, 2, TTFT, "prompt check (stream)", stream * 50, 0),  # never counted as checks
            history_row(second, 2, "", "Aggregated", 0, 0),
        ]
    rows.append(history_row(111, 0, "", "Aggregated", 0, 0))
    return as_text(rows)


def test_step_stats_split_the_ramp_into_plateaus_with_exact_throughput() -> None:
    steps = step_stats(history())
    assert [s["users"] for s in steps] == [1, 2]
    first, second = steps
    assert (first["checks"], first["seconds"], first["checks_per_s"]) == (10, 5, 2.0)
    assert (second["checks"], second["seconds"], second["checks_per_s"]) == (20, 5, 4.0)
    assert second["failures"] == 1
    assert second["latency"]["POST prompt check"] == {"p50_ms": 200.0, "p95_ms": 400.0}
    assert "TTFT prompt check (stream)" not in second["latency"]
    assert first["latency"] == {"POST prompt check": {"p50_ms": 100.0, "p95_ms": 200.0}}


def test_an_entry_with_nothing_done_in_a_plateau_has_no_latency_there() -> None:
    rows = [history_row(100, 0, "", "Aggregated", 0, 0)]
    rows += [history_row(s, 1, "POST", "slow check", 1, 0, p50=300) for s in range(101, 104)]
    rows += [history_row(s, 2, "POST", "slow check", 1, 0, p50=300) for s in range(104, 107)]  # flat: none done
    steps = step_stats(as_text(rows))
    assert steps[0]["latency"]["POST slow check"] == {"p50_ms": 300.0, "p95_ms": 600.0}
    assert steps[1]["latency"]["POST slow check"] == {"p50_ms": None, "p95_ms": None}
    assert steps[1]["checks"] == 0


@pytest.mark.parametrize(
    ("rates", "knee", "reached"),
    [
        ([1.0, 2.0, 3.0, 3.1], 4, True),  # 4 users: 3.0 >= 0.9 * 3.1, and a larger step followed
        ([1.0, 2.0, 4.0], 4, False),  # still climbing at the last step
        ([2.0, 2.0, 1.9], 1, True),  # saturated from the first step
    ],
)
def test_saturation_is_the_first_step_within_ten_percent_of_the_peak(
    rates: list[float], knee: int, reached: bool
) -> None:
    steps = [{"users": 2**i, "checks_per_s": r} for i, r in enumerate(rates)]
    result = saturation(steps)
    assert result["knee_users"] == knee
    assert result["reached"] is reached
    assert result["peak_checks_per_s"] == max(rates)
    assert result["last_step_gain"] == round(rates[-1] / rates[-2], 3)


def test_saturation_of_an_empty_ramp() -> None:
    assert saturation([]) == {"peak_checks_per_s": 0.0, "knee_users": None, "reached": False, "last_step_gain": None}


def entries_and_totals() -> tuple[list[dict], dict]:
    entries = request_stats(as_text(STATS), [])
    return entries, check_totals(entries)


def test_slo_passes_when_every_check_type_meets_it() -> None:
    entries, totals = entries_and_totals()
    verdict = judge_slo(entries, totals, Slo(p95_ms=2500, max_failure_ratio=0.05, ttft_p95_ms=600))
    assert verdict["passed"] and verdict["violations"] == []


def test_slo_names_each_miss() -> None:
    entries, totals = entries_and_totals()
    verdict = judge_slo(entries, totals, Slo(p95_ms=1900, max_failure_ratio=0.01, ttft_p95_ms=500))
    assert not verdict["passed"]
    joined = " | ".join(verdict["violations"])
    assert "prompt check (stream): p95 2000.0 ms > 1900 ms" in joined
    assert "response check: p95 2500.0 ms > 1900 ms" in joined
    assert not any(v.startswith("prompt check: ") for v in verdict["violations"])  # 1800 ms meets it
    assert "TTFT: p95 600.0 ms > 500 ms" in joined
    assert "failure ratio 0.0357 > 0.01" in joined


def test_slo_fails_a_run_without_any_check_and_no_slo_always_passes() -> None:
    assert judge_slo([], check_totals([]), Slo(p95_ms=1000))["violations"] == ["no check completed"]
    assert judge_slo([], check_totals([]), Slo())["passed"]


def test_summarize_reads_the_files_locust_writes(tmp_path: Path) -> None:
    prefix = tmp_path / "locust"
    write_csv(Path(f"{prefix}_stats.csv"), STATS_COLUMNS, STATS)
    write_csv(Path(f"{prefix}_failures.csv"), FAILURE_COLUMNS, FAILURES)
    write_csv(Path(f"{prefix}_stats_history.csv"), HISTORY_COLUMNS, history())
    summary = summarize(prefix, Slo(max_failure_ratio=0.01))
    assert summary["checks"]["parse_failures"] == 4
    assert [s["users"] for s in summary["steps"]] == [1, 2]
    assert summary["saturation"]["knee_users"] == 2
    assert summary["slo"]["passed"] is False


def test_summarize_without_files_reports_nothing_done(tmp_path: Path) -> None:
    summary = summarize(tmp_path / "missing", Slo(p95_ms=10))
    assert summary["checks"]["requests"] == 0
    assert summary["steps"] == []
    assert summary["slo"]["passed"] is False
