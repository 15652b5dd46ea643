"""The eval against the real vLLM server on the CPU serving the random-weight stand-in.

The F1 values are meaningless here; these tests check the report's structure and counts, the
stand-in warning, and that an interrupted run resumes with every item counted exactly once.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from guard_eval.__main__ import main
from tests.conftest import interrupt_after, interruptible

pytestmark = pytest.mark.e2e

SLICE = ["xstest_prompt", "harmbench_response", "xstest_refusal"]


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def test_small_slice_through_the_standin(guard_url: str, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    args = ["--url", guard_url, "--datasets", *SLICE, "--limit", "2", "--constrain", "--out", str(out)]
    assert main([*args, "--no-progress"]) == 0

    report = json.loads((out / "report.json").read_text())
    assert report["endpoint"]["standin"] is True
    assert any("MEANINGLESS" in w for w in report["warnings"])
    assert [d["name"] for d in report["datasets"]] == SLICE
    for d in report["datasets"]:
        items = d["items"]
        assert items["selected"] == 2
        assert items["pending"] == 0
        assert items["decided"] + items["parse_failures"] + items["errors"] == 2
        assert items["errors"] == 0, d["errors"]
        assert d["latency"]["n"] == 2
        assert d["published"] is not None or d["name"] == "xstest_prompt"
    prompt, response, refusal = report["datasets"]
    assert set(prompt["metrics"]) == set(response["metrics"]) == {"strict", "loose"}
    assert set(refusal["metrics"]) == {"refusal"}
    assert prompt["benign_set"] is True
    assert prompt["categories"] is not None and sum(r["items"] for r in prompt["categories"].values()) == 2
    for d in report["datasets"]:
        for metric in d["metrics"].values():
            assert metric["tp"] + metric["fp"] + metric["fn"] + metric["tn"] == d["items"]["decided"]

    markdown = (out / "report.md").read_text()
    assert "STAND-IN MODEL" in markdown and "MEANINGLESS" in markdown
    for heading in ("## Items", "## Harmfulness", "## Refusal detection", "## False positives on benign sets"):
        assert heading in markdown
    assert (out / "f1.png").read_bytes()[:4] == b"\x89PNG"
    records = _records(out / "results.jsonl")
    assert len(records) == 6
    assert len({(r["dataset"], r["id"]) for r in records}) == 6


def test_interrupted_run_resumes_with_every_item_counted_once(guard_url: str, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    results = out / "results.jsonl"
    args = ["--url", guard_url, "--datasets", "saferlhf", "jbb_benign", "--limit", "15", "--concurrency", "1"]
    args += ["--constrain", "--out", str(out), "--no-progress"]
    before = interrupt_after(interruptible("guard_eval", args), results, 3, timeout=120)
    first = _records(results)
    assert 3 <= len(first) < 30

    # A run killed mid-write leaves half a line behind: the rerun must ignore it.
    with results.open("a") as handle:
        handle.write('{"dataset": "saferlhf", "id": "saferlhf_te')
    assert main(args) == 0

    after = results.read_text()
    assert after.startswith(before)  # append-only: the first run's records are untouched
    records = _records_lenient(results)
    # An answer: a verdict, or an unreadable one (both final); connection/HTTP errors are retried.
    answered = Counter(r["id"] for r in records if r["safety"] is not None or r["error_type"] == "GuardParseError")
    assert len({r["id"] for r in records}) == 30
    assert {r["dataset"] for r in records} == {"saferlhf", "jbb_benign"}
    assert set(answered.values()) == {1}  # no answered item was checked twice
    report = json.loads((out / "report.json").read_text())
    assert report["results_file"]["unreadable_lines"] == [len(first) + 1]
    for d in report["datasets"]:
        items = d["items"]
        assert items["selected"] == 15
        assert items["pending"] == 0
        assert items["decided"] + items["parse_failures"] + items["errors"] == 15
        assert d["latency"]["n"] == 15


def _records_lenient(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
