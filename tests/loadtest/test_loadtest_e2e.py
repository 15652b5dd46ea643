"""`python -m loadtest run` against the real CPU server (tiny stand-in).

Seconds long: a short ramp. The stand-in's verdicts are random; these tests
check what is measured and reported, never what the verdicts say.
"""

from __future__ import annotations

from pathlib import Path

from loadtest.summary import TTFT
from tests.loadtest.runner import run_loadtest

LOCUST_FILES = ["locust_stats.csv", "locust_stats_history.csv", "locust_failures.csv", "report.html", "summary.json"]


def test_a_short_ramp_writes_its_reports_and_a_missed_slo_fails_the_run(guard_url: str, tmp_path: Path) -> None:
    code, summary = run_loadtest(
        tmp_path,
        guard_url,
        *("--steps", "1,2", "--step-seconds", "4", "--response-share", "0.5", "--stream-share", "0.5"),
        *("--slo-p95-ms", "1"),  # no check takes under a millisecond
    )
    for name in LOCUST_FILES:
        assert (tmp_path / name).stat().st_size > 0, name
    assert code == 1
    assert summary["server"]["standin"] is True and "random" in summary["note"]
    assert summary["decoding"] == "constrained"
    checks = summary["checks"]
    assert checks["requests"] >= 4
    assert checks["failures"] == 0 and checks["parse_failures"] == 0  # the grammar always yields a verdict
    entries = {(e["type"], e["name"]) for e in summary["requests"]}
    assert ("POST", "prompt check") in entries and ("POST", "response check") in entries
    streamed = [e for e in summary["requests"] if e["name"].endswith("(stream)") and e["type"] == "POST"]
    ttft = {e["name"]: e for e in summary["requests"] if e["type"] == TTFT}
    assert streamed and set(ttft) == {e["name"] for e in streamed}
    for entry in streamed:  # one time-to-first-token sample per streamed check, never longer than it
        assert ttft[entry["name"]]["requests"] == entry["requests"]
        assert ttft[entry["name"]]["p50_ms"] <= entry["max_ms"]
    assert [s["users"] for s in summary["steps"]] == [1, 2]
    assert sum(s["checks"] for s in summary["steps"]) <= checks["requests"]
    assert summary["slo"]["passed"] is False
    assert any("p95" in v for v in summary["slo"]["violations"])


def test_free_generation_on_random_weights_counts_every_check_as_a_parse_failure(
    guard_url: str, tmp_path: Path
) -> None:
    code, summary = run_loadtest(
        tmp_path,
        guard_url,
        *("--steps", "2", "--step-seconds", "3", "--response-share", "0", "--stream-share", "0"),
        *("--decoding", "free", "--slo-max-failure-ratio", "0.5"),
    )
    checks = summary["checks"]
    assert checks["requests"] > 0
    assert checks["parse_failures"] == checks["failures"] == checks["requests"]
    assert code == 1 and "failure ratio 1.0000 > 0.5" in summary["slo"]["violations"]
