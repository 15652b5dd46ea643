"""The reduced reliability run (`python -m reliability --quick`): fuzzing, faults and security once, in
seconds, with the report's invariants asserted: nothing lost, nothing silently Safe, no undocumented 5xx,
no crash, no hang, no process left behind, every fault scenario ending as documented.

The overload part is left to `make reliability`: whether a request is late at twice the guard's capacity
depends on how busy the machine is, which a test suite must not assert."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability.__main__ import run
from reliability.injection import POSITIONS, SURFACES
from reliability.report import Outcome, Report


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    workdir = tmp_path_factory.mktemp("reliability")
    result = run(quick=True, parts=["fuzz", "faults", "security", "injection"], workdir=workdir)
    result.write(workdir / "report")
    return result


def test_every_interface_was_tried(report: Report) -> None:
    names = set(report.interfaces)
    for interface in (
        "client prepare_input",
        "client parse_verdict",
        "client check / check_many",
        "CLI guard check / parse",
        "CLI guard screen",
        "gateway POST /v1/moderations",
        "gateway POST /v1/guard/checks",
        "gateway POST /beta/litellm_basic_guardrail_api",
        "gateway POST /v1/chat/completions",
        "gateway GET /health",
    ):
        assert interface in names and report.interfaces[interface].inputs > 0, interface


def test_invariants_hold(report: Report) -> None:
    totals = report.totals()
    examples = {name: tally.examples for name, tally in report.interfaces.items() if tally.examples}
    assert totals["lost"] == 0, examples
    assert totals["silent_safe"] == 0, examples
    assert totals["unexpected_5xx"] == 0, examples
    assert totals["crashes"] == 0, examples
    assert totals["hangs"] == 0, examples
    assert totals["orphans"] == 0
    assert totals["schema_violations"] == 0, examples


def test_fault_scenarios_end_as_documented(report: Report) -> None:
    assert len(report.scenarios) >= 4
    assert [s.name for s in report.scenarios if not s.ok] == [], [s for s in report.scenarios if not s.ok]
    assert all(s.recovered for s in report.scenarios)


def test_security_checks_hold(report: Report) -> None:
    assert report.checks and [c for c in report.checks if not c.ok] == []
    assert report.overload == {"ok": True, "skipped": True}


def test_indirect_injection_is_blocked_on_every_surface(report: Report) -> None:
    assert len(report.injection) == len(SURFACES) * len(POSITIONS)
    assert [row for row in report.injection if not row["ok"]] == []
    assert {row["marked"] for row in report.injection} == {"blocked"}
    assert {row["clean"] for row in report.injection} == {"passed"}


def test_the_report_is_written(report: Report, tmp_path: Path) -> None:
    json_path, md_path = report.write(tmp_path)
    assert '"passed": true' in json_path.read_text()
    assert "| gateway POST /v1/moderations |" in md_path.read_text()
    assert "| tool result after the last user turn | blocked / passed | blocked / passed | blocked / passed |" in (
        md_path.read_text()
    )
    assert report.passed()


def test_an_outcome_past_the_invariants_fails_the_report() -> None:
    broken = Report("quick")
    broken.overload = {"ok": True}
    broken.tally("x").add(Outcome.VERDICT)
    assert broken.passed()
    broken.tally("x").add(Outcome.CRASH, "boom")
    assert not broken.passed() and broken.tally("x").examples == ["crash: boom"]


def test_a_marker_let_through_fails_the_report() -> None:
    report = Report("quick")
    report.overload = {"ok": True}
    report.injection = [{"surface": "s", "position": "p", "marked": "passed", "clean": "passed", "ok": False}]
    assert not report.passed() and report.totals()["injection_failed"] == 1
