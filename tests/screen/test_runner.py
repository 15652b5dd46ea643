"""The resumable runner against in-process fakes: records, the append-only log, resume, the manifest,
the lock, and one work queue shared by replicas of different speed and health."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from guard_client import AsyncGuardClient, GuardMode, Safety
from guard_client.batch import (
    CheckRecord,
    ReplicasDownError,
    ResultsBusyError,
    ResultsLog,
    ResumableRun,
    RunManifest,
    RunMismatchError,
    RunStats,
    WorkItem,
)
from tests.screen.conftest import dead_client, fake_client, fake_guard

MANIFEST = RunManifest(model="qwen3guard", root="/models/x", options={"constrain": True})


def _items(n: int, text: str = "text {i}") -> list[WorkItem]:
    return [WorkItem(f"row-{i}", text.format(i=i), {"line": i + 1}) for i in range(n)]


def _run(
    out: Path,
    clients: Sequence[AsyncGuardClient],
    items: Sequence[WorkItem],
    manifest: RunManifest = MANIFEST,
    **kwargs: Any,
) -> tuple[RunStats, ResultsLog]:
    async def go() -> tuple[RunStats, ResultsLog]:
        with ResumableRun(out, manifest, fresh=kwargs.pop("fresh", False)) as run:
            stats = await run.run(clients, items, concurrency=kwargs.pop("concurrency", 4), **kwargs)
            return stats, run.log

    return asyncio.run(go())


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")[:-1]


def test_each_kind_of_answer_is_recorded_with_its_id_and_metadata(tmp_path: Path) -> None:
    items = [
        WorkItem("a", ("question", "UNSAFE reply"), {"line": 1}),
        WorkItem("b", "GARBLE"),
        WorkItem("c", "BROKEN"),
        WorkItem("d", [{"role": "user", "content": "CONTRO"}]),
        WorkItem("e", [{"role": "nobody"}]),
    ]
    stats, log = _run(tmp_path, [fake_client(fake_guard())], items)
    assert stats.checked == 5
    r = log.records
    assert (r["a"].mode, r["a"].safety, r["a"].categories, r["a"].refusal) == (
        GuardMode.RESPONSE,
        Safety.UNSAFE,
        ["Violent"],
        False,
    )
    assert r["a"].model_extra == {"line": 1}
    assert (r["b"].safety, r["b"].error_type, r["b"].retry) == (None, "GuardParseError", False)
    assert (r["b"].error or "").startswith("no 'Safety:' line")
    assert (r["c"].error_type, r["c"].retry) == ("GuardHTTPError", True)
    assert r["d"].safety is Safety.CONTROVERSIAL
    assert (r["e"].error_type, r["e"].retry) == ("GuardInputError", False)
    assert r["b"].flagged() and r["c"].flagged()  # an undecided record never reads as safe
    assert stats.errors == {"GuardParseError": 1, "GuardHTTPError": 1, "GuardInputError": 1}


def test_a_finished_run_checks_nothing_again(tmp_path: Path) -> None:
    fake = fake_guard()
    items = _items(10)
    assert _run(tmp_path, [fake_client(fake)], items)[0].checked == 10
    stats, _ = _run(tmp_path, [fake_client(fake)], items)
    assert (stats.checked, stats.already_done) == (0, 10)
    assert fake.paths().count("/v1/chat/completions") == 10
    assert len(_lines(tmp_path / "results.jsonl")) == 10


class Stop(BaseException):
    """Stands in for Ctrl-C in the middle of a run (a BaseException, like KeyboardInterrupt)."""


def test_interrupted_run_resumes_and_checks_every_item_once(tmp_path: Path) -> None:
    answered: list[str] = []

    def fail(body: dict[str, Any]) -> None:
        if len(answered) >= 7:
            raise Stop
        answered.append(body["messages"][-1]["content"])

    items = _items(30)
    with pytest.raises(Stop):
        _run(tmp_path, [fake_client(fake_guard(fail=fail))], items, concurrency=3)
    first = ResultsLog.read(tmp_path / "results.jsonl")
    assert 1 <= len(first.records) == len(_lines(tmp_path / "results.jsonl")) <= 7
    assert first.unreadable_lines == []

    fresh_fake = fake_guard()
    stats, log = _run(tmp_path, [fake_client(fresh_fake)], items)
    assert stats.checked == 30 - len(first.records)
    assert sorted(log.records) == sorted(w.id for w in items)
    assert len(_lines(tmp_path / "results.jsonl")) == 30  # nothing logged was checked twice
    rechecked = {body["messages"][-1]["content"] for path, body in fresh_fake.calls if body}
    assert rechecked == {w.item for w in items if w.id not in first.records}


def test_a_line_cut_mid_write_is_ignored_and_its_item_checked_again(tmp_path: Path) -> None:
    items = _items(6)
    _run(tmp_path, [fake_client(fake_guard())], items[:3])
    whole = CheckRecord(id=items[3].id, mode=GuardMode.PROMPT, safety=Safety.SAFE)
    results = tmp_path / "results.jsonl"
    with results.open("a") as handle:
        handle.write(whole.model_dump_json()[:40])  # killed mid-write: no closing brace, no newline
    log = ResultsLog.read(results)
    assert (len(log.records), log.unreadable_lines) == (3, [4])
    assert [w.id for w in log.pending(items)] == [w.id for w in items[3:]]
    stats, log = _run(tmp_path, [fake_client(fake_guard())], items)
    assert stats.checked == 3
    assert len(ResultsLog.read(results).records) == 6
    assert ResultsLog.read(results).unreadable_lines == [4]  # the fragment stays on a line of its own
    assert len(_lines(results)) == 7


def test_errors_are_retried_next_run_and_the_latest_record_counts(tmp_path: Path) -> None:
    items = [WorkItem("x", "BROKEN then fine"), WorkItem("y", "GARBLE")]
    broken = fake_guard()
    _run(tmp_path, [fake_client(broken)], items)
    healed = fake_guard(fail=lambda body: None)
    stats, log = _run(tmp_path, [fake_client(healed)], items)
    assert stats.checked == 1  # only the HTTP error; the unreadable answer is an answer
    assert log.records["x"].safety is Safety.SAFE
    assert ResultsLog.read(tmp_path / "results.jsonl").superseded == 1


def test_results_of_another_model_or_options_are_never_mixed(tmp_path: Path) -> None:
    _run(tmp_path, [fake_client(fake_guard())], _items(2))
    other = RunManifest(model="qwen3guard", root="/models/x", options={"constrain": False})
    with pytest.raises(RunMismatchError, match="option constrain: True, not False"):
        _run(tmp_path, [fake_client(fake_guard())], _items(2), other)
    with pytest.raises(RunMismatchError, match="root"):
        _run(tmp_path, [fake_client(fake_guard())], _items(2), MANIFEST.model_copy(update={"root": "/other"}))
    stats, _ = _run(tmp_path, [fake_client(fake_guard())], _items(2), other, fresh=True)
    assert stats.checked == 2
    assert len(list(tmp_path.glob("results.*.jsonl"))) == 1  # the old log was set aside, not deleted


def test_one_run_per_directory_at_a_time(tmp_path: Path) -> None:
    with ResumableRun(tmp_path, MANIFEST), pytest.raises(ResultsBusyError, match="in use by another run"):
        ResumableRun(tmp_path, MANIFEST).__enter__()
    with ResumableRun(tmp_path, MANIFEST):  # released when the first run ended
        pass


def test_a_slow_replica_takes_less_and_a_dead_one_none(tmp_path: Path) -> None:
    fast, slow = fake_guard(), fake_guard()
    clients = [
        fake_client(fast, "http://fast", delay_s=0.01),
        fake_client(slow, "http://slow", delay_s=0.04),
        dead_client("http://dead"),
    ]
    items = _items(600)
    stats, log = _run(tmp_path, clients, items, concurrency=4)
    assert sorted(log.records) == sorted(w.id for w in items)
    assert all(r.decided for r in log.records.values())  # the dead replica's items went back to the queue
    assert stats.by_replica["http://dead"] == 0
    assert stats.handbacks >= 3
    assert stats.by_replica["http://fast"] > 2 * stats.by_replica["http://slow"] > 0
    assert len(_lines(tmp_path / "results.jsonl")) == 600


def test_every_replica_down_stops_the_run_and_keeps_what_was_logged(tmp_path: Path) -> None:
    with pytest.raises(ReplicasDownError, match="rerun the same command to resume"):
        _run(tmp_path, [dead_client("http://a"), dead_client("http://b")], _items(50))
    assert ResultsLog.read(tmp_path / "results.jsonl").records == {}


def test_a_worker_bug_is_raised_not_swallowed(tmp_path: Path) -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError, match="bug"):
        _run(tmp_path, [fake_client(boom)], _items(3))
