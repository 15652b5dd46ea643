"""The retry policy and the mapping of HTTP outcomes onto the exception tree, with their named defaults.

The numbers and semantics follow openai-python's: retry 408, 409, 429 and every 5xx plus connection
errors, with jittered exponential back-off, honouring the server's Retry-After. `retry_wait` is the whole
decision; each client's `_send` is a five-line loop around it (sync and async twins, as openai-python's
`_retry_request`), so a request that succeeds at once costs one `try`.
"""

from __future__ import annotations

import random
from typing import Any

from guard_client._errors import GuardConnectionError, GuardHTTPError
from guard_client._wire import Answer

DEFAULT_MAX_RETRIES = 2
RETRY_STATUSES = frozenset({408, 409, 429})
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
MAX_RETRY_AFTER = 60.0


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, GuardConnectionError):
        return True
    return isinstance(exc, GuardHTTPError) and (exc.status_code in RETRY_STATUSES or exc.status_code >= 500)


def retry_delay(exc: BaseException | None, attempt_number: int) -> float:
    """Seconds to wait after failed attempt `attempt_number` (1-based): the server's Retry-After when
    it sent one, else jittered exponential back-off."""
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        return float(min(retry_after, MAX_RETRY_AFTER))
    delay: float = min(INITIAL_RETRY_DELAY * 2 ** (attempt_number - 1), MAX_RETRY_DELAY)
    return delay * (0.75 + random.random() / 2)


def retry_wait(exc: BaseException, retries_done: int, max_retries: int) -> float | None:
    """Seconds to wait before retrying a request that failed with `exc` after `retries_done` retries, or
    None when `exc` is final (not retryable, or the retries are spent)."""
    if retries_done >= max_retries or not is_retryable(exc):
        return None
    return retry_delay(exc, retries_done + 1)


def decode_response(response: Answer) -> Any:
    """The JSON body of a successful response; an error status or a non-JSON body is a `GuardHTTPError`."""
    if response.status_code >= 400:
        raise http_error(response)
    try:
        return response.json()
    except ValueError as exc:
        raise GuardHTTPError(response.status_code, f"response is not JSON: {response.text[:200]!r}") from exc


def http_error(response: Answer) -> GuardHTTPError:
    try:
        body = response.json()
        message = str(body.get("error", {}).get("message") or body.get("message") or body)
    except (ValueError, AttributeError):
        message = response.text[:500] or response.reason_phrase
    retry_after = None
    header = response.headers.get("retry-after")
    if header is not None:
        try:
            retry_after = max(0.0, float(header))
        except ValueError:  # an HTTP date: fall back to our own back-off
            retry_after = None
    return GuardHTTPError(response.status_code, message, retry_after)
