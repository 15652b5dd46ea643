"""Resumable batch checks: a run directory whose append-only results log is the run's only state.

Every answer is appended to `results.jsonl` as one `CheckRecord` keyed by its row id the moment it
arrives, so a run stopped at any point (Ctrl-C, a crash, a dead server) loses nothing: the next run
reads the log, skips ids that already have an answer and checks the rest. Reading tolerates a run
killed mid-write (the cut last line is ignored and its row checked again) and an id logged more than
once (its latest record wins). A recorded error that was not the guard's answer (a connection,
HTTP or timeout error) is retried on the next run. `run.json` holds the run's `RunManifest`: the
served model and the check options. Results of another model or other options are never mixed in.
A lock on the directory keeps two runs from writing into it at once.

The work is one queue shared by every replica's workers: a fast replica takes more, a slow one
less, and a replica that cannot be reached leaves the rotation (it rests, then one probe tries it
again) while the item it failed goes back to the queue.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError
from tqdm import tqdm

from guard_client._client import AsyncGuardClient
from guard_client._constants import DEFAULT_CONCURRENCY
from guard_client._errors import GuardConnectionError, GuardError, GuardInputError, GuardParseError
from guard_client._input import CheckItem, item_messages, item_mode
from guard_client._verdict import Verdict

if TYPE_CHECKING:
    from filelock import BaseFileLock

RESULTS_FILE, MANIFEST_FILE, LOCK_FILE = "results.jsonl", "run.json", ".lock"
#: Raw model output kept per record: enough to see why a verdict did not parse.
RAW_CHARS = 300
#: Failures that are the answer for an item under the run's options; every other error is retried next run.
FINAL_ERRORS = frozenset({GuardParseError.__name__, GuardInputError.__name__})
#: A replica leaves the rotation after this many connection failures in a row (each after the
#: client's own retries), rests, and comes back through one probe; each failed probe doubles the rest.
TRIP_AFTER_FAILURES = 3
FIRST_REST_S, MAX_REST_S = 1.0, 30.0
#: An item whose replicas failed to reach the guard this many times is logged as an error (retried next run).
MAX_HANDBACKS = 5


class CheckRecord(Verdict):
    """One line of the results log: the verdict for one row, its id, and how it was obtained.

    Extra fields (the row's line number, its dataset) are kept as given. An undecided record
    carries `error` and `error_type` (the GuardError subclass that stopped it).
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str
    latency_s: float = 0.0
    replica: str | None = None

    @property
    def retry(self) -> bool:
        """Whether the next run checks this row again: no answer, and not for a reason that would repeat."""
        return self.safety is None and self.error_type not in FINAL_ERRORS


@dataclass(frozen=True)
class WorkItem:
    """One row to check: its id, what to check, and fields copied into its record."""

    id: str
    item: CheckItem
    meta: Mapping[str, Any] = field(default_factory=dict)


class RunManifest(BaseModel):
    """What results in one run directory are comparable under: the served model and the options."""

    model_config = ConfigDict(frozen=True)

    model: str
    root: str
    options: dict[str, Any] = {}

    def differences(self, other: RunManifest) -> list[str]:
        mine, theirs = self.model_dump(mode="json"), other.model_dump(mode="json")
        out = [f"{k}: {theirs[k]!r}, not {mine[k]!r}" for k in ("model", "root") if mine[k] != theirs[k]]
        for key in sorted(set(mine["options"]) | set(theirs["options"])):
            if mine["options"].get(key) != theirs["options"].get(key):
                out.append(f"option {key}: {theirs['options'].get(key)!r}, not {mine['options'].get(key)!r}")
        return out


class RunSetupError(RuntimeError):
    """A run cannot start in this directory as asked; the message says what to change."""


class ResultsBusyError(RunSetupError):
    """Another run holds the directory's lock."""


class RunMismatchError(RunSetupError):
    """The directory holds results of another model or other options."""


class ReplicasDownError(GuardConnectionError):
    """Every replica left the rotation: nothing can be checked until one comes back. Rerun to resume."""


@dataclass
class ResultsLog:
    """What a results log holds: the latest record per id, and what was discarded reading it."""

    records: dict[str, CheckRecord] = field(default_factory=dict)
    #: Line numbers that were not a complete record (a run killed mid-write, a damaged file).
    unreadable_lines: list[int] = field(default_factory=list)
    #: Records replaced by a later one for the same id (retried errors).
    superseded: int = 0

    @classmethod
    def read(cls, path: Path) -> ResultsLog:
        log = cls()
        if not path.exists():
            return log
        with path.open(encoding="utf-8", errors="replace", newline="\n") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = CheckRecord.model_validate_json(line)
                except ValidationError:
                    log.unreadable_lines.append(number)
                    continue
                if record.id in log.records:
                    log.superseded += 1
                log.records[record.id] = record
        return log

    def pending(self, items: Iterable[WorkItem]) -> list[WorkItem]:
        """Items with no answer yet: never checked, or last logged with an error worth retrying."""
        out = []
        for work in items:
            record = self.records.get(work.id)
            if record is None or record.retry:
                out.append(work)
        return out


@dataclass
class RunStats:
    """What one `ResumableRun.run` did."""

    checked: int = 0
    already_done: int = 0
    wall_s: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    #: Records logged per replica URL this run.
    by_replica: Counter[str] = field(default_factory=Counter)
    #: Items handed back to the queue because their replica could not be reached.
    handbacks: int = 0

    @property
    def rate(self) -> float:
        return self.checked / self.wall_s if self.wall_s > 0 else 0.0


def record_for(work: WorkItem, result: Verdict | GuardError, latency_s: float, replica: str | None) -> CheckRecord:
    """Turn what a check returned (a Verdict, or the GuardError it raised) into a record."""
    common: dict[str, Any] = {**work.meta, "id": work.id, "latency_s": round(latency_s, 6), "replica": replica}
    if isinstance(result, GuardError):
        result = Verdict.from_error(item_mode(work.item), result, None)
    fields = result.model_dump(exclude={"raw"})
    if not result.decided and not fields.get("error_type"):
        fields["error_type"] = GuardError.__name__
    return CheckRecord(**fields, **common, raw=result.raw[:RAW_CHARS])


class _Replica:
    """One guard URL's client and its place in the rotation (a small circuit breaker)."""

    def __init__(self, client: AsyncGuardClient) -> None:
        self.client = client
        self.failures = 0
        self.rest_s = FIRST_REST_S
        self.resting_until = 0.0
        self.probing = False
        self.last_error = ""

    @property
    def tripped(self) -> bool:
        return self.failures >= TRIP_AFTER_FAILURES

    async def admit(self) -> None:
        """Wait until a worker of this replica may take an item: at once while it is healthy; when
        it is out of rotation, after its rest, and then only one worker (the probe) at a time."""
        while self.tripped:
            wait = self.resting_until - time.monotonic()
            if wait <= 0 and not self.probing:
                self.probing = True
                return
            await asyncio.sleep(max(wait, 0.05))

    def answered(self) -> None:
        self.failures, self.rest_s, self.probing = 0, FIRST_REST_S, False

    def unreachable(self, error: GuardError) -> None:
        self.failures += 1
        self.last_error = f"{type(error).__name__}: {error}"
        if self.tripped:
            self.resting_until = time.monotonic() + self.rest_s
            if self.probing:
                self.rest_s = min(self.rest_s * 2, MAX_REST_S)
            self.probing = False


class ResumableRun:
    """A run directory: lock it, check or write its manifest, read its log, then `run` what is pending.

    with ResumableRun(out_dir, manifest) as run:
        stats = await run.run([client_a, client_b], items, concurrency=64, options={"constrain": True})
    """

    def __init__(self, directory: Path, manifest: RunManifest, *, fresh: bool = False) -> None:
        self.directory = Path(directory)
        self.manifest = manifest
        self.fresh = fresh
        self.results_path = self.directory / RESULTS_FILE
        self.manifest_path = self.directory / MANIFEST_FILE
        self.log = ResultsLog()
        self._lock: BaseFileLock | None = None
        self._out: IO[str] | None = None

    def __enter__(self) -> ResumableRun:
        self.directory.mkdir(parents=True, exist_ok=True)
        # filelock picks the platform's lock (fcntl, msvcrt) when a run starts, so importing the library loads none.
        import filelock

        lock = filelock.FileLock(self.directory / LOCK_FILE, timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise ResultsBusyError(
                f"{self.directory} is in use by another run (it holds {self.directory / LOCK_FILE}); "
                "wait for it to finish or choose another output directory"
            ) from None
        self._lock = lock
        try:
            self._prepare()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _prepare(self) -> None:
        (self.directory / LOCK_FILE).write_text(f"{os.getpid()}\n", encoding="utf-8")  # who holds it, for people
        has_results = self.results_path.exists() and self.results_path.stat().st_size > 0
        if self.fresh and has_results:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
            self.results_path.rename(self.directory / f"results.{stamp}.jsonl")
        elif has_results and self.manifest_path.exists():
            previous = RunManifest.model_validate_json(self.manifest_path.read_text(encoding="utf-8"))
            differs = self.manifest.differences(previous)
            if differs:
                raise RunMismatchError(
                    f"{self.results_path} holds results for {'; '.join(differs)}; start over with --fresh "
                    "(the old results are kept beside it) or choose another output directory"
                )
        self.manifest_path.write_text(self.manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
        self.log = ResultsLog.read(self.results_path)
        self._out = self.results_path.open("a", encoding="utf-8")
        size = self.results_path.stat().st_size
        if size:
            with self.results_path.open("rb") as raw:
                raw.seek(size - 1)
                if raw.read(1) != b"\n":  # a line cut mid-write: close it off so the next record starts clean
                    self._out.write("\n")
                    self._out.flush()

    def write(self, record: CheckRecord) -> None:
        """Append one record; one write per record from the event loop's thread, so lines never interleave."""
        assert self._out is not None, "use ResumableRun as a context manager"
        self._out.write(record.model_dump_json() + "\n")
        self._out.flush()
        self.log.records[record.id] = record

    async def run(
        self,
        clients: Sequence[AsyncGuardClient],
        items: Iterable[WorkItem],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        options: Mapping[str, Any] | None = None,
        progress: bool = False,
    ) -> RunStats:
        """Check every pending item, `concurrency` in flight per client, logging each record as it arrives.

        The clients must raise on failure (their default `on_error`), so that an unreachable replica
        can hand its item back. Raises `ReplicasDownError` when every replica is out of the rotation;
        what was logged until then stays, and the next run resumes.
        """
        if concurrency < 1:
            raise GuardInputError("concurrency must be at least 1")
        if not clients:
            raise GuardInputError("a run needs at least one client")
        items = list(items)
        todo = self.log.pending(items)
        stats = RunStats(already_done=len(items) - len(todo))
        if not todo:
            return stats
        check_options = dict(options or {})
        replicas = [_Replica(client) for client in clients]
        queue: asyncio.Queue[tuple[WorkItem, int]] = asyncio.Queue()
        for work in todo:
            queue.put_nowait((work, 0))
        all_down = asyncio.Event()
        started = time.perf_counter()

        with tqdm(total=len(todo), disable=not progress, unit="check", smoothing=0.05, dynamic_ncols=True) as bar:

            async def worker(replica: _Replica) -> None:
                url = replica.client.base_url
                while True:
                    # Yield once per item: a transport that answers without suspending (in-process, or
                    # a cached reply) would otherwise let one worker run the whole queue and delay Ctrl-C.
                    await asyncio.sleep(0)
                    await replica.admit()
                    work, handbacks = await queue.get()
                    start = time.perf_counter()
                    result: Verdict | GuardError
                    try:
                        result = await replica.client.check(item_messages(work.item), **check_options)
                    except GuardConnectionError as exc:
                        replica.unreachable(exc)
                        if all(r.tripped for r in replicas):
                            all_down.set()
                        if handbacks + 1 < MAX_HANDBACKS:
                            stats.handbacks += 1
                            queue.put_nowait((work, handbacks + 1))
                            queue.task_done()
                            continue
                        result = exc
                    except GuardError as exc:
                        replica.answered()  # it answered, with an error: reachable
                        result = exc
                    else:
                        replica.answered()
                    record = record_for(work, result, time.perf_counter() - start, url)
                    self.write(record)
                    stats.checked += 1
                    stats.by_replica[url] += 1
                    if record.error_type:
                        stats.errors[record.error_type] += 1
                    bar.update()
                    queue.task_done()

            workers = [asyncio.create_task(worker(r)) for r in replicas for _ in range(min(concurrency, len(todo)))]
            done_waiter: asyncio.Task[Any] = asyncio.create_task(queue.join())
            down_waiter: asyncio.Task[Any] = asyncio.create_task(all_down.wait())
            try:
                await asyncio.wait([done_waiter, down_waiter, *workers], return_when=asyncio.FIRST_COMPLETED)
                complete = done_waiter.done()
                for task in workers:  # a worker only ends by raising: a bug, never swallowed
                    if task.done() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
            finally:
                for task in [*workers, done_waiter, down_waiter]:
                    task.cancel()
                await asyncio.gather(*workers, done_waiter, down_waiter, return_exceptions=True)
                stats.wall_s = time.perf_counter() - started
        if not complete:
            reasons = "; ".join(f"{r.client.base_url} ({r.last_error})" for r in replicas)
            raise ReplicasDownError(
                f"no guard replica can be reached: {reasons}. {stats.checked} rows were checked and logged; "
                "rerun the same command to resume"
            )
        return stats
