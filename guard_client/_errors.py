"""The exception tree: catch `GuardError` for everything, or a subclass for what you handle."""

from __future__ import annotations


class GuardError(Exception):
    """Base of every error the guard client raises."""


class GuardInputError(GuardError, ValueError):
    """The input cannot be checked as given (empty, wrong shape, too long); nothing was sent."""


class GuardConnectionError(GuardError):
    """The server could not be reached."""


class GuardTimeoutError(GuardConnectionError):
    """The server did not answer in time."""


class GuardHTTPError(GuardError):
    """The server answered with an error status."""

    def __init__(self, status_code: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code = status_code
        self.message = message
        #: Seconds the server asked to wait (Retry-After), if it said.
        self.retry_after = retry_after


class GuardParseError(GuardError):
    """The model's output is not a valid verdict. Never read as Safe."""

    def __init__(self, reason: str, raw: str) -> None:
        super().__init__(f"{reason}; raw output: {raw[:300]!r}")
        self.reason = reason
        self.raw = raw
