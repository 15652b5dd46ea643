"""Run items through a guard endpoint, appending every result to a JSONL file as it arrives.

The results file is the run's only state. Each line is one `ResultRecord` keyed by (dataset, id);
a rerun reads it, skips items that already have an answer and checks the rest, so an interrupted
run resumes where it stopped and loses nothing. Reading tolerates a run killed mid-write (the
unfinished last line is ignored and its item checked again) and counts an item once however
often it appears: its latest record wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO

from pydantic import BaseModel, ConfigDict, ValidationError
from tqdm import tqdm

from guard_client import item_messages
from guard_client._client import AsyncGuardClient
from guard_client._errors import GuardError, GuardParseError
from guard_client._labels import Safety
from guard_client._verdict import Verdict
from guard_client.eval._datasets import EvalItem, Task

#: Raw model output kept per record: enough to see why a verdict did not parse.
RAW_CHARS = 300


class Outcome(StrEnum):
    VERDICT = "verdict"  # a decided verdict for the item's task
    PARSE_FAILURE = "parse_failure"  # the model answered, but not with a readable verdict
    ERROR = "error"  # no answer: connection, HTTP, timeout or input error; checked again on resume


class ResultRecord(BaseModel):
    """One line of the results file."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    dataset: str
    id: str
    outcome: Outcome
    latency_s: float
    safety: Safety | None = None
    categories: list[str] = []
    refusal: bool | None = None
    error: str | None = None
    raw: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.dataset, self.id)


@dataclass
class ResultsLog:
    """What a results file holds: the latest record per item, and what was discarded reading it."""

    records: dict[tuple[str, str], ResultRecord] = field(default_factory=dict)
    #: Line numbers that were not a complete record (a run killed mid-write, a damaged file).
    unreadable_lines: list[int] = field(default_factory=list)
    #: Records replaced by a later one for the same item.
    superseded: int = 0


def read_results(path: Path) -> ResultsLog:
    log = ResultsLog()
    if not path.exists():
        return log
    with path.open(encoding="utf-8", errors="replace", newline="\n") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = ResultRecord.model_validate_json(line)
            except ValidationError:
                log.unreadable_lines.append(number)
                continue
            if record.key in log.records:
                log.superseded += 1
            log.records[record.key] = record
    return log


def pending_items(items: Sequence[EvalItem], log: ResultsLog) -> list[EvalItem]:
    """Items with no answer yet: never checked, or last checked with an error."""
    out = []
    for item in items:
        record = log.records.get((item.dataset, item.id))
        if record is None or record.outcome is Outcome.ERROR:
            out.append(item)
    return out


class ResultsBusyError(RuntimeError):
    """Another run is appending to the same results file."""


@contextlib.contextmanager
def open_results(path: Path) -> Iterator[IO[str]]:
    """Open the results file for appending, holding an exclusive lock for the whole run.

    A file that does not end in a newline was cut mid-write: the fragment is closed off with a
    newline so the next record starts on a line of its own (the fragment stays unreadable).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ResultsBusyError(f"another eval is writing to {path}; wait for it or pass another --out") from None
        size = handle.seek(0, 2)
        if size:
            with path.open("rb") as raw:
                raw.seek(size - 1)
                if raw.read(1) != b"\n":
                    handle.write("\n")
                    handle.flush()
        yield handle


def record_for(item: EvalItem, result: object, latency: float) -> ResultRecord:
    """Turn what the client returned (a Verdict or the GuardError it raised) into a record."""
    common = {"dataset": item.dataset, "id": item.id, "latency_s": round(latency, 6)}
    if isinstance(result, GuardParseError):
        return ResultRecord(**common, outcome=Outcome.PARSE_FAILURE, error=result.reason, raw=result.raw[:RAW_CHARS])
    if isinstance(result, GuardError):
        return ResultRecord(**common, outcome=Outcome.ERROR, error=f"{type(result).__name__}: {result}")
    if not isinstance(result, Verdict):
        raise TypeError(f"expected a Verdict or GuardError, got {type(result).__name__}")
    if not result.decided:  # a client built with a fail-open/closed policy: still no answer
        return ResultRecord(**common, outcome=Outcome.ERROR, error=result.error, raw=result.raw[:RAW_CHARS])
    if item.task is Task.RESPONSE_REFUSAL and result.refusal is None:
        return ResultRecord(
            **common, outcome=Outcome.PARSE_FAILURE, error="no 'Refusal:' line", raw=result.raw[:RAW_CHARS]
        )
    return ResultRecord(
        **common,
        outcome=Outcome.VERDICT,
        safety=result.safety,
        categories=[c.value for c in result.categories],
        refusal=result.refusal,
        raw=result.raw[:RAW_CHARS],
    )


async def run_items(
    client: AsyncGuardClient,
    items: Sequence[EvalItem],
    results_path: Path,
    *,
    concurrency: int = 8,
    constrain: bool = False,
    progress: bool = False,
) -> int:
    """Check every item that has no answer in `results_path` yet, appending each record as it arrives.

    The client must raise on failure (its default `on_error`). Returns the number of items checked.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    todo = pending_items(items, read_results(results_path))
    if not todo:
        return 0
    queue: asyncio.Queue[EvalItem] = asyncio.Queue()
    for item in todo:
        queue.put_nowait(item)

    with open_results(results_path) as out, tqdm(total=len(todo), disable=not progress, unit="item") as bar:

        async def worker() -> None:
            while True:
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                start = time.perf_counter()
                result: object
                try:
                    result = await client.check(item_messages(item.check_item), constrain=constrain)
                except GuardError as exc:
                    result = exc
                record = record_for(item, result, time.perf_counter() - start)
                # One write per record from the event loop's single thread: lines never interleave.
                out.write(record.model_dump_json() + "\n")
                out.flush()
                bar.update()

        workers = [asyncio.create_task(worker()) for _ in range(min(concurrency, len(todo)))]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
    return len(todo)
