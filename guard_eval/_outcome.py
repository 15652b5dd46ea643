"""What a logged check means for the eval: a verdict for the item's task, an unreadable answer, or no answer."""

from __future__ import annotations

from enum import StrEnum

from guard_client import GuardParseError
from guard_client.batch import CheckRecord
from guard_eval._datasets import Task


class Outcome(StrEnum):
    VERDICT = "verdict"  # a decided verdict for the item's task
    PARSE_FAILURE = "parse_failure"  # the model answered, but not with a readable verdict
    ERROR = "error"  # no answer: connection, HTTP, timeout or input error


NO_REFUSAL_LINE = "no 'Refusal:' line"


def outcome_of(record: CheckRecord, task: Task | None) -> Outcome:
    if record.error_type == GuardParseError.__name__:
        return Outcome.PARSE_FAILURE
    if not record.decided:
        return Outcome.ERROR
    if task is Task.RESPONSE_REFUSAL and record.refusal is None:
        return Outcome.PARSE_FAILURE  # a refusal set needs the Refusal line the answer left out
    return Outcome.VERDICT


def failure_of(record: CheckRecord, task: Task | None) -> str:
    """Why a record is not a verdict for the task ("" when it is)."""
    if outcome_of(record, task) is Outcome.VERDICT:
        return ""
    if record.decided:
        return NO_REFUSAL_LINE
    return (
        f"{record.error_type}: {record.error}" if record.error_type != GuardParseError.__name__ else record.error or ""
    )
