"""`python -m bench`: one registry lists every benchmark, and every benchmark reports through the one writer."""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import BENCHMARKS, main, module
from bench.report import Report
from tests.conftest import REPO

HARNESS = {"__init__", "__main__", "arms", "baseline", "corpus", "flops", "loops", "machine", "report", "workload"}
REPORT_BODIES = {"side_by_side_report"}  # the side-by-side benchmark's markdown and plot, apart from its driver


def test_help_lists_every_benchmark() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench", "--help"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    for name in BENCHMARKS:
        assert name in out


def test_every_module_beside_the_harness_is_a_registered_benchmark() -> None:
    modules = {path.stem for path in (REPO / "bench").glob("*.py")} - HARNESS - REPORT_BODIES
    assert modules == {name.replace("-", "_") for name in BENCHMARKS}


@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_every_benchmark_has_its_arguments_its_run_and_its_report(name: str) -> None:
    benchmark = module(name)
    parser = argparse.ArgumentParser()
    benchmark.add_arguments(parser)
    assert any(action.dest == "out" for action in parser._actions)
    assert callable(benchmark.run)
    report = getattr(benchmark, "REPORT", None) or module("side-by-side").REPORT
    assert isinstance(report, Report)


def test_only_the_writer_writes_report_files() -> None:
    """No benchmark saves a figure, picks a plotting backend or dumps its JSON itself."""
    offenders = []
    for path in (REPO / "bench").glob("*.py"):
        if path.name == "report.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in {"savefig", "use"}:
                offenders.append(f"{path.name}:{node.lineno} .{node.attr}")
    assert offenders == []


def test_an_unknown_benchmark_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["no-such-benchmark"])
    assert exit_.value.code == 2
    assert "invalid choice: 'no-such-benchmark'" in capsys.readouterr().err


def test_the_reports_live_beside_the_benchmarks() -> None:
    assert sorted(p.name for p in Path(REPO / "bench" / "reports").glob("*.md")) == [
        "bench.md",
        "bench_chat.md",
        "bench_gateway.md",
        "bench_replicas.md",
        "bench_tune.md",
        "client_overhead.md",
        "locate.md",
        "screen_bench.md",
    ]
