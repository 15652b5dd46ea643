"""Scoring and the report: counts and metrics for a small run whose confusion matrices are known by hand."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from guard_client import ServerInfo
from guard_client.batch import ResultsLog, ResumableRun, RunManifest
from guard_eval._datasets import DatasetSpec, PublishedSection, Task, load_dataset
from guard_eval.report import DatasetRun, build_report, render_markdown, score_dataset, write_report
from tests.eval.conftest import REAL_ROOT, STANDIN_ROOT, FakeGuard, prompt_row, response_row, write_jsonl

PUBLISHED = {
    "model": "Toy-Guard",
    "prompt_classification": {"toy": {"strict": 60.0, "loose": 51.0}},
    "refusal_detection_f1": {"toyref": 50.0},
    "notes": ["a note from the publisher"],
}
PROMPT_SPEC = DatasetSpec(
    "toy", "toy.jsonl", Task.PROMPT_HARMFULNESS, (PublishedSection.PROMPT, "toy"), True, "category"
)
REFUSAL_SPEC = DatasetSpec("toyref", "toyref.jsonl", Task.RESPONSE_REFUSAL, (PublishedSection.REFUSAL, "toyref"))


def _prompt_rows() -> list[dict[str, Any] | str]:
    return [
        prompt_row(0, "harmful", "UNSAFE 0", category="A"),  # strict TP, loose TP
        prompt_row(1, "harmful", "CONTRO 1", category="A"),  # strict TP, loose FN
        prompt_row(2, "harmful", "plain 2", category="B"),  # FN, FN
        prompt_row(3, "unharmful", "CONTRO 3", category="B"),  # strict FP, loose TN
        prompt_row(4, "unharmful", "plain 4", category="B"),  # TN, TN
        prompt_row(5, "unharmful", "GARBLE 5", category="A"),  # parse failure
        prompt_row(6, "unharmful", "BROKEN 6", category="A"),  # error
        '{"id": "p-7", "label": ',  # malformed: skipped, reported
        prompt_row(8, "unharmful", "plain 8", category="C"),  # selected out by the test (pending)
    ]


def _refusal_rows() -> list[dict[str, Any] | str]:
    return [
        response_row(0, "refusal", "REFUSE", task="response_refusal"),  # TP
        response_row(1, "compliance", "REFUSE", task="response_refusal"),  # FP
        response_row(2, "refusal", "sure", task="response_refusal"),  # FN
        response_row(3, "compliance", "sure", task="response_refusal"),  # TN
        response_row(4, "compliance", "NOREFUSAL", task="response_refusal"),  # parse failure
    ]


def _scored(tmp_path: Path, root: str = STANDIN_ROOT) -> dict[str, Any]:
    guard = FakeGuard(root)
    prompt = load_dataset("toy", write_jsonl(tmp_path / "toy.jsonl", _prompt_rows()), "category")
    refusal = load_dataset("toyref", write_jsonl(tmp_path / "toyref.jsonl", _refusal_rows()))
    # p-8 is selected but never run: it must show as pending, not vanish.
    runs = [DatasetRun(prompt, prompt.items, PROMPT_SPEC), DatasetRun(refusal, refusal.items, REFUSAL_SPEC)]

    async def go() -> tuple[ServerInfo, ResultsLog]:
        async with guard.client() as client:
            with ResumableRun(tmp_path / "run", RunManifest(model="m", root=root)) as run:
                await run.run([client], [i.work for i in [*prompt.items[:-1], *refusal.items]])
            return await client.server_info(), run.log

    info, log = asyncio.run(go())
    return build_report(
        runs,
        log,
        url="http://fake-guard",
        info=info,
        constrain=False,
        published=PUBLISHED,
        limit=None,
    )


def test_counts_add_up_and_every_item_is_counted_once(tmp_path: Path) -> None:
    report = _scored(tmp_path)
    toy, toyref = report["datasets"]
    assert toy["items"] == {
        "in_file": 8,
        "selected": 8,
        "decided": 5,
        "parse_failures": 1,
        "errors": 1,
        "pending": 1,
    }
    assert toy["labels"] == {"positive": 3, "negative": 5}
    assert toy["input_problems"]["count"] == 1
    assert toy["input_problems"]["first"][0]["line"] == 8
    assert toyref["items"] == {
        "in_file": 5,
        "selected": 5,
        "decided": 4,
        "parse_failures": 1,
        "errors": 0,
        "pending": 0,
    }
    assert toy["latency"]["n"] == 7
    assert toy["latency"]["p50_s"] is not None
    assert {e["count"] for e in toy["errors"]} == {1}


def test_strict_and_loose_metrics_match_the_hand_counts(tmp_path: Path) -> None:
    strict, loose = (_scored(tmp_path)["datasets"][0]["metrics"][m] for m in ("strict", "loose"))
    assert (strict["tp"], strict["fp"], strict["fn"], strict["tn"]) == (2, 1, 1, 1)
    assert strict["f1"] == pytest.approx(200 / 3)
    assert strict["false_positive_rate"] == pytest.approx(50.0)
    assert (loose["tp"], loose["fp"], loose["fn"], loose["tn"]) == (1, 0, 2, 2)
    assert loose["f1"] == pytest.approx(50.0)
    assert loose["precision"] == pytest.approx(100.0)
    assert loose["false_positive_rate"] == 0.0


def test_refusal_f1_uses_the_refusal_line(tmp_path: Path) -> None:
    toyref = _scored(tmp_path)["datasets"][1]
    refusal = toyref["metrics"]["refusal"]
    assert (refusal["tp"], refusal["fp"], refusal["fn"], refusal["tn"]) == (1, 1, 1, 1)
    assert refusal["f1"] == pytest.approx(50.0)
    assert set(toyref["metrics"]) == {"refusal"}


def test_published_gaps_over_two_points_are_marked(tmp_path: Path) -> None:
    report = _scored(tmp_path)
    toy, toyref = report["datasets"]
    assert toy["published"]["strict"]["gap"] == pytest.approx(200 / 3 - 60.0)
    assert toy["published"]["strict"]["over_tolerance"] is True
    assert toy["published"]["loose"]["gap"] == pytest.approx(-1.0)
    assert toy["published"]["loose"]["over_tolerance"] is False
    assert toyref["published"]["refusal"]["over_tolerance"] is False
    assert len(report["gaps_over_tolerance"]) == 1
    assert report["gaps_over_tolerance"][0].startswith("toy strict: 66.7 vs published 60.0 (+6.7)")
    markdown = render_markdown(report)
    assert "60.0 (+6.7) **⚠ >2**" in markdown
    assert "51.0 (-1.0) |" in markdown


def test_per_category_counts(tmp_path: Path) -> None:
    categories = _scored(tmp_path)["datasets"][0]["categories"]
    assert set(categories) == {"A", "B", "C"}
    a, b, c = categories["A"], categories["B"], categories["C"]
    assert (a["items"], a["positive"], a["decided"], a["undecided"], a["flagged_strict"], a["flagged_loose"]) == (
        4,
        2,
        2,
        2,
        2,
        1,
    )
    assert (b["items"], b["positive"], b["flagged_strict"], b["flagged_loose"]) == (3, 1, 1, 0)
    assert b["strict"]["false_positive_rate"] == pytest.approx(50.0)
    assert (c["items"], c["decided"], c["undecided"]) == (1, 0, 1)


def test_predicted_categories_are_counted(tmp_path: Path) -> None:
    # Unsafe and Controversial answers name Violent: p-0, p-1, p-3.
    assert _scored(tmp_path)["datasets"][0]["predicted_categories"] == {"Violent": 3}


def test_standin_endpoint_is_called_out_loudly(tmp_path: Path) -> None:
    report = _scored(tmp_path)
    assert report["endpoint"]["standin"] is True
    assert any("MEANINGLESS" in w for w in report["warnings"])
    markdown = render_markdown(report)
    assert markdown.index("MEANINGLESS") < markdown.index("## Items")  # before any number


def test_real_endpoint_has_no_standin_warning(tmp_path: Path) -> None:
    report = _scored(tmp_path, root=REAL_ROOT)
    assert report["endpoint"]["standin"] is False
    assert not any("MEANINGLESS" in w for w in report["warnings"])
    assert "MEANINGLESS" not in render_markdown(report)


def test_report_warns_about_pending_errors_and_skipped_lines(tmp_path: Path) -> None:
    warnings = " ".join(_scored(tmp_path)["warnings"])
    assert "1 selected items have no result yet" in warnings
    assert "1 items got no answer" in warnings
    assert "1 dataset lines were skipped" in warnings


def test_benign_set_gets_a_false_positive_section(tmp_path: Path) -> None:
    markdown = render_markdown(_scored(tmp_path))
    section = markdown.split("## False positives on benign sets")[1].split("\n## ")[0]
    assert "| toy | 2 | 1 | **50.0%** | 0 | **0.0%** |" in section


def test_empty_selection_scores_without_crashing(tmp_path: Path) -> None:
    loaded = load_dataset("toy", write_jsonl(tmp_path / "toy.jsonl", _prompt_rows()), "category")
    entry = score_dataset(DatasetRun(loaded, [], PROMPT_SPEC), ResultsLog(), PUBLISHED)
    assert entry["items"]["selected"] == 0
    assert entry["metrics"]["strict"]["f1"] is None
    assert entry["published"]["strict"]["gap"] is None
    assert entry["published"]["strict"]["over_tolerance"] is False


def test_writes_markdown_json_and_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")  # the loadtest extra, which `make install` always installs
    report = _scored(tmp_path)
    written = write_report(report, tmp_path / "out")
    assert set(written) == {"json", "markdown", "chart"}
    assert json.loads(written["json"].read_text()) == json.loads(json.dumps(report))
    assert written["chart"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![F1 ours vs published](f1.png)" in written["markdown"].read_text()


def test_no_matplotlib_still_writes_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    written = write_report(_scored(tmp_path), tmp_path / "out")
    assert set(written) == {"json", "markdown"}
    assert "No chart: matplotlib is not installed" in written["markdown"].read_text()


def test_the_client_library_does_not_import_matplotlib() -> None:
    import subprocess
    import sys

    code = "import sys, guard_client, guard_eval; sys.exit('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
