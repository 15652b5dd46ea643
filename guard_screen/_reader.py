"""Rows of a dataset to screen: JSONL, CSV or Parquet, read into `WorkItem`s with every bad row reported.

Which columns hold what is configurable; by default a `messages` column (OpenAI messages) wins,
then `prompt` (+ `response`, response moderation when it is set), then `text`; `id` is the row id,
else the row's line (JSONL, CSV) or row number (Parquet). A row that cannot be checked is reported
with its number and skipped: it never stops the run.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from guard_client import CheckItem
from guard_client.batch import WorkItem
from guard_client.conversation import conversation_view

PARQUET_HINT = "reading Parquet needs pyarrow: pip install 'qwen3guard-serving[screen]' (or pip install pyarrow)"


class InputFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"

    @classmethod
    def of(cls, path: Path) -> InputFormat:
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".ndjson", ".json"):
            return cls.JSONL
        if suffix in (".csv", ".tsv"):
            return cls.CSV
        if suffix in (".parquet", ".pq"):
            return cls.PARQUET
        raise ScreenInputError(f"cannot tell the format of {path} from its name: pass --format jsonl|csv|parquet")


class InputKind(StrEnum):
    """What a row holds: a text (prompt moderation), a prompt and maybe a response, or messages."""

    TEXT = "text"
    PROMPT_RESPONSE = "prompt_response"
    MESSAGES = "messages"


class ScreenInputError(ValueError):
    """The input cannot be read as asked (no file, unreadable, a missing column); nothing was checked."""


@dataclass(frozen=True)
class Columns:
    """Column names; a name given explicitly must exist, a default is used only when present."""

    id: str | None = None
    text: str | None = None
    prompt: str | None = None
    response: str | None = None
    messages: str | None = None


DEFAULT_COLUMNS = Columns(id="id", text="text", prompt="prompt", response="response", messages="messages")


@dataclass(frozen=True)
class RowProblem:
    row: int
    message: str


@dataclass
class ScreenInput:
    path: Path
    kind: InputKind
    columns: dict[str, str | None]
    items: list[WorkItem] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    rows: int = 0
    #: Every column name any row has (what a caller may ask for as an optional column).
    seen: frozenset[str] = frozenset()


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    with path.open(encoding="utf-8", newline="\n") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, f"malformed JSON ({exc.msg} at column {exc.colno})"
                continue
            if isinstance(obj, str):
                obj = {"text": obj}
            if not isinstance(obj, dict):
                yield number, f"expected a JSON object or string, got {type(obj).__name__}"
                continue
            yield number, obj


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, dialect="excel-tab" if path.suffix.lower() == ".tsv" else "excel")
        for row in reader:
            if None in row:
                yield reader.line_num, f"{len(row[None])} more field(s) than the header has"
                continue
            yield reader.line_num, row


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ScreenInputError(PARQUET_HINT) from None
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises its own error types for a file that is not Parquet
        raise ScreenInputError(f"cannot read {path} as Parquet: {exc}") from None
    number = 0
    for batch in parquet.iter_batches():
        for row in batch.to_pylist():
            number += 1
            yield number, row


def _choose(name: str, explicit: str | None, default: str | None, seen: set[str]) -> str | None:
    if explicit is not None:
        if explicit not in seen:
            raise ScreenInputError(f"no column {explicit!r} (--{name}-column) in the input; it has: {_list(seen)}")
        return explicit
    return default if default in seen else None


def _list(columns: set[str]) -> str:
    return ", ".join(sorted(columns)) or "(no columns)"


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string, got {value!r:.60}")
    return value


def _check_item(row: dict[str, Any], kind: InputKind, cols: dict[str, str | None]) -> CheckItem:
    if kind is InputKind.MESSAGES:
        assert cols["messages"] is not None
        messages = row.get(cols["messages"])
        if isinstance(messages, str):  # CSV (or a JSON-encoded column)
            try:
                messages = json.loads(messages)
            except json.JSONDecodeError as exc:
                raise ValueError(f"column {cols['messages']!r} is not JSON messages ({exc.msg})") from None
        if not isinstance(messages, list) or not messages:
            raise ValueError(f"column {cols['messages']!r} must be a non-empty list of messages")
        # Shown to the guard as every surface shows a conversation (docs/conversation-view.md): tool results
        # and late system turns included. A GuardInputError is a ValueError: the row's problem.
        return conversation_view(messages).checked()
    if kind is InputKind.TEXT:
        assert cols["text"] is not None
        return _text(row.get(cols["text"]), f"column {cols['text']!r}")
    assert cols["prompt"] is not None
    prompt = _text(row.get(cols["prompt"]), f"column {cols['prompt']!r}")
    response = row.get(cols["response"]) if cols["response"] else None
    if response is None or response == "":
        return prompt
    return (prompt, _text(response, f"column {cols['response']!r}"))


def read_input(
    path: Path,
    fmt: InputFormat | None = None,
    columns: Columns = Columns(),
    meta_columns: tuple[str, ...] = (),
    optional_columns: tuple[str, ...] = (),
) -> ScreenInput:
    """Read every row of `path`; explicit `columns` override the defaults and must exist.

    `meta_columns` must exist and are copied into each item's `meta`; `optional_columns` are copied
    when the input has them (a caller checks `seen` for the ones it needs)."""
    path = Path(path)
    if not path.is_file():
        raise ScreenInputError(f"no input file at {path}")
    fmt = fmt or InputFormat.of(path)
    reader = {InputFormat.JSONL: _jsonl_rows, InputFormat.CSV: _csv_rows, InputFormat.PARQUET: _parquet_rows}[fmt]
    try:
        rows = list(reader(path))
    except UnicodeDecodeError as exc:
        raise ScreenInputError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (OSError, csv.Error) as exc:
        raise ScreenInputError(f"cannot read {path}: {exc}") from None
    seen = {key for _, row in rows if isinstance(row, dict) for key in row}
    chosen = {
        name: _choose(name, getattr(columns, name), getattr(DEFAULT_COLUMNS, name), seen)
        for name in ("id", "text", "prompt", "response", "messages")
    }
    if chosen["messages"] and (columns.messages or not (columns.prompt or columns.text)):
        kind = InputKind.MESSAGES
    elif chosen["prompt"] and not columns.text:
        kind = InputKind.PROMPT_RESPONSE
    elif chosen["text"]:
        kind = InputKind.TEXT
    else:
        raise ScreenInputError(
            "no column to check: the input needs a 'messages', 'prompt' (+ 'response') or 'text' column, or "
            f"--messages-column/--prompt-column/--text-column naming one; it has: {_list(seen)}"
        )
    for name in meta_columns:
        if name not in seen:
            raise ScreenInputError(f"no column {name!r} (--keep) in the input; it has: {_list(seen)}")
    loaded = ScreenInput(path, kind, chosen, rows=len(rows), seen=frozenset(seen))
    carried = (*meta_columns, *(name for name in optional_columns if name in seen and name not in meta_columns))
    first_row: dict[str, int] = {}
    for number, row in rows:
        if isinstance(row, str):
            loaded.problems.append(RowProblem(number, row))
            continue
        try:
            item = _check_item(row, kind, chosen)
            if chosen["id"] is not None:
                raw_id = row.get(chosen["id"])
                if raw_id is None or raw_id == "" or isinstance(raw_id, (bool, dict, list)):
                    raise ValueError(f"id column {chosen['id']!r} is empty or not a string/number: {raw_id!r:.60}")
                row_id = str(raw_id)
            else:
                row_id = str(number)
            if row_id in first_row:
                raise ValueError(f"id {row_id!r} repeats row {first_row[row_id]}")
        except ValueError as exc:
            loaded.problems.append(RowProblem(number, str(exc)))
            continue
        first_row[row_id] = number
        meta = {"row": number, **{name: row.get(name) for name in carried}}
        loaded.items.append(WorkItem(row_id, item, meta))
    return loaded
