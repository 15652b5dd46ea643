"""One replica of two behind the real vllm-router killed under load (the fakes over HTTP, seconds): nothing lost,
no Safe, every batch answered, the replica routed to again once back, nothing left running."""

from __future__ import annotations

from pathlib import Path

from reliability.faults import Run
from reliability.replicas import replica_killed_under_load
from reliability.report import Report


def test_a_replica_killed_under_load_costs_no_check(tmp_path: Path) -> None:
    report = Report("quick")
    replica_killed_under_load(Run(report, tmp_path, quick=True))
    (scenario,) = report.scenarios
    assert scenario.items == 80 and scenario.lost == 0 and scenario.silent_safe == 0 and scenario.orphans == 0
    assert "answers 20 x 200;" in scenario.observed, scenario.observed
    assert scenario.recovered and scenario.ok, scenario.observed
