"""The runner against a fake endpoint: outcomes, the append-only results file, resume and interruption."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from guard_eval._datasets import EvalItem, load_dataset
from guard_eval._runner import (
    Outcome,
    ResultRecord,
    ResultsBusyError,
    open_results,
    pending_items,
    read_results,
    run_items,
)
from tests.eval.conftest import FakeGuard, Interrupted, prompt_row, response_row, write_jsonl


def _items(tmp_path: Path, n: int = 10) -> list[EvalItem]:
    rows = [
        prompt_row(i, "harmful" if i % 2 else "unharmful", text=f"text {i} {'UNSAFE' * (i % 3 == 0)}") for i in range(n)
    ]
    return load_dataset("set", write_jsonl(tmp_path / "set.jsonl", rows)).items


def _run(guard: FakeGuard, items: list[EvalItem], results: Path, concurrency: int = 3, **kwargs: object) -> int:
    async def go() -> int:
        async with guard.client() as client:
            return await run_items(client, items, results, concurrency=concurrency, **kwargs)  # type: ignore[arg-type]

    return asyncio.run(go())


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")[:-1]


def test_each_outcome_is_recorded(tmp_path: Path, fake_guard: FakeGuard) -> None:
    rows = [
        response_row(0, "harmful", "UNSAFE reply"),
        response_row(1, "unharmful", "GARBLE"),
        response_row(2, "unharmful", "BROKEN"),
        response_row(3, "unharmful", "CONTRO reply"),
    ]
    items = load_dataset("resp", write_jsonl(tmp_path / "r.jsonl", rows)).items
    results = tmp_path / "out" / "results.jsonl"
    assert _run(fake_guard, items, results) == 4
    log = read_results(results)
    by_id = {key[1]: record for key, record in log.records.items()}
    assert by_id["r-0"].outcome is Outcome.VERDICT
    assert (by_id["r-0"].safety, by_id["r-0"].categories, by_id["r-0"].refusal) == ("Unsafe", ["Violent"], False)
    assert by_id["r-1"].outcome is Outcome.PARSE_FAILURE
    assert by_id["r-1"].error == "no 'Safety:' line"
    assert by_id["r-2"].outcome is Outcome.ERROR
    assert "500" in (by_id["r-2"].error or "")
    assert by_id["r-3"].safety == "Controversial"
    assert all(r.latency_s >= 0 for r in log.records.values())


def test_a_refusal_item_without_a_refusal_line_is_a_parse_failure(tmp_path: Path, fake_guard: FakeGuard) -> None:
    rows = [
        response_row(0, "refusal", "REFUSE", task="response_refusal"),
        response_row(1, "compliance", "NOREFUSAL", task="response_refusal"),
    ]
    items = load_dataset("ref", write_jsonl(tmp_path / "r.jsonl", rows)).items
    results = tmp_path / "results.jsonl"
    _run(fake_guard, items, results)
    by_id = {key[1]: record for key, record in read_results(results).records.items()}
    assert (by_id["r-0"].outcome, by_id["r-0"].refusal) == (Outcome.VERDICT, True)
    assert (by_id["r-1"].outcome, by_id["r-1"].error) == (Outcome.PARSE_FAILURE, "no 'Refusal:' line")


def test_a_finished_run_checks_nothing_again(tmp_path: Path, fake_guard: FakeGuard) -> None:
    items = _items(tmp_path)
    results = tmp_path / "results.jsonl"
    assert _run(fake_guard, items, results) == 10
    assert _run(fake_guard, items, results) == 0
    assert len(fake_guard.checked) == 10
    assert len(_lines(results)) == 10


def test_interrupted_run_resumes_and_counts_every_item_once(tmp_path: Path, fake_guard: FakeGuard) -> None:
    items = _items(tmp_path, 12)
    results = tmp_path / "results.jsonl"
    fake_guard.interrupt_after = 5
    with pytest.raises(Interrupted):
        _run(fake_guard, items, results, concurrency=3)
    first = read_results(results)
    # Only answered checks reached the file, each as one complete line.
    assert 1 <= len(first.records) == len(_lines(results)) <= 5
    assert first.unreadable_lines == []
    done = len(first.records)

    fake_guard.interrupt_after = None
    fake_guard.checked.clear()
    assert _run(fake_guard, items, results, concurrency=3) == 12 - done
    log = read_results(results)
    assert sorted(log.records) == sorted((i.dataset, i.id) for i in items)
    assert len(_lines(results)) == 12  # nothing recorded was checked twice
    recorded = {key[1] for key in first.records}
    assert sorted(fake_guard.checked) == sorted(i.prompt for i in items if i.id not in recorded)
    assert log.superseded == 0


def test_a_record_cut_mid_write_is_ignored_and_its_item_checked_again(tmp_path: Path, fake_guard: FakeGuard) -> None:
    items = _items(tmp_path, 6)
    results = tmp_path / "results.jsonl"
    _run(fake_guard, items[:3], results)
    whole = ResultRecord(dataset="set", id=items[3].id, outcome=Outcome.VERDICT, latency_s=0.1, safety="Safe")
    with results.open("a") as handle:
        handle.write(whole.model_dump_json()[:40])  # killed mid-write: no closing brace, no newline
    log = read_results(results)
    assert len(log.records) == 3
    assert log.unreadable_lines == [4]
    assert [i.id for i in pending_items(items, log)] == [i.id for i in items[3:]]

    fake_guard.checked.clear()
    assert _run(fake_guard, items, results) == 3
    assert sorted(fake_guard.checked) == sorted(i.prompt for i in items[3:])
    log = read_results(results)
    assert len(log.records) == 6
    assert log.unreadable_lines == [4]  # the fragment stays on a line of its own
    assert len(_lines(results)) == 7


def test_errors_are_checked_again_and_the_latest_record_counts(tmp_path: Path, fake_guard: FakeGuard) -> None:
    items = _items(tmp_path, 3)
    results = tmp_path / "results.jsonl"
    error = ResultRecord(dataset="set", id=items[0].id, outcome=Outcome.ERROR, latency_s=30.0, error="timeout")
    parse = ResultRecord(dataset="set", id=items[1].id, outcome=Outcome.PARSE_FAILURE, latency_s=0.1, error="x")
    results.write_text(error.model_dump_json() + "\n" + parse.model_dump_json() + "\n")
    assert _run(fake_guard, items, results) == 2  # the error again, and the item never checked
    assert sorted(fake_guard.checked) == sorted([items[0].prompt, items[2].prompt])
    log = read_results(results)
    assert log.superseded == 1
    assert log.records[("set", items[0].id)].outcome is Outcome.VERDICT
    assert log.records[("set", items[1].id)].outcome is Outcome.PARSE_FAILURE  # an answer: kept


def test_duplicate_records_count_once(tmp_path: Path) -> None:
    record = ResultRecord(dataset="set", id="p-1", outcome=Outcome.VERDICT, latency_s=0.1, safety="Unsafe")
    path = tmp_path / "results.jsonl"
    path.write_text((record.model_dump_json() + "\n") * 3 + "\n" + json.dumps({"dataset": "set"}) + "\n")
    log = read_results(path)
    assert list(log.records) == [("set", "p-1")]
    assert log.superseded == 2
    assert log.unreadable_lines == [5]  # valid JSON but not a record


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    with open_results(path), pytest.raises(ResultsBusyError), open_results(path):
        pass
    with open_results(path):  # released after the first run ended
        pass
