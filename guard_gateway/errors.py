"""OpenAI's error envelope and the gateway's errors, each with its status: plain exceptions and pydantic models,
importable without the web stack (settings and serving layers raise them; `http_errors` turns them into HTTP).

`{"error": {"message": str, "type": str, "param": str | null, "code": str | null}}`. Every 4xx names
the offending parameter where there is one. The only 5xx a client sees for a guard problem is 503
`guard_unavailable` with Retry-After (the openai SDK retries 5xx; a content verdict is never one).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class GatewayError(Exception):
    """An error with its HTTP status and OpenAI envelope fields."""

    status_code = 400
    type = "invalid_request_error"

    def __init__(
        self, message: str, *, param: str | None = None, code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error = ErrorBody(message=self.message, type=self.type, param=self.param, code=self.code)
        return ErrorResponse(error=error).model_dump()


class InvalidRequest(GatewayError):
    status_code = 400


class UnsupportedRequest(GatewayError):
    """A request part the guard cannot read (an image, audio, a file) under `conversation.non_text: refuse`:
    never passed on unguarded."""

    status_code = 422

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message, param=param, code="unsupported_request")


class AuthenticationFailed(GatewayError):
    status_code = 401

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message, code=code, headers={"WWW-Authenticate": "Bearer"})


class ModelNotFound(GatewayError):
    status_code = 404

    def __init__(self, model: str, served: list[str]) -> None:
        super().__init__(
            f"The model {model!r} does not exist here; this gateway serves: {', '.join(served)}",
            param="model",
            code="model_not_found",
        )


class BodyTooLarge(GatewayError):
    status_code = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is larger than {limit} bytes", code="request_too_large")


class Overloaded(GatewayError):
    """More requests in flight than `limits.max_in_flight`: refused at once rather than queued."""

    status_code = 429
    type = "requests"

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(
            f"The gateway is serving its limit of {limit} requests; retry after {retry_after} s",
            code="rate_limit_exceeded",
            headers={"Retry-After": str(retry_after)},
        )


class GuardUnavailable(GatewayError):
    """The guard could not decide (down, timed out, unreadable output) and the policy fails closed."""

    status_code = 503
    type = "guard_unavailable"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, code="guard_unavailable", headers={"Retry-After": str(retry_after)})
