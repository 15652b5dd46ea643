"""OpenAI's error envelope, the gateway's one error body, and the one place exceptions become HTTP.

`{"error": {"message": str, "type": str, "param": str | null, "code": str | null}}`. Every 4xx names
the offending parameter where there is one. The only 5xx a client sees for a guard problem is 503
`guard_unavailable` with Retry-After (the openai SDK retries 5xx; a content verdict is never one).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("guard_gateway")


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


def error_response(error: GatewayError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status_code, headers=error.headers)


def _param(loc: tuple[int | str, ...]) -> str | None:
    """`("body", "input", 0)` -> `input[0]`: the parameter as the request spells it."""
    parts = [part for part in loc if part != "body"]
    if not parts:
        return None
    name = str(parts[0])
    for part in parts[1:]:
        name += f"[{part}]" if isinstance(part, int) else f".{part}"
    return name


def _validation_error(exc: RequestValidationError) -> GatewayError:
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    if first.get("type") == "json_invalid":
        return InvalidRequest("We could not parse the JSON body of your request: " + str(first.get("msg")))
    loc = tuple(first.get("loc", ()))
    param = _param(loc)
    if first.get("type") == "missing":
        return InvalidRequest(f"Missing required parameter: {param!r}", param=param)
    # pydantic reports every member of a union: keep the message short and name the parameter.
    root = _param(loc[:2]) if len(loc) >= 2 else param
    return InvalidRequest(f"Invalid value for {root!r}: {first.get('msg')}", param=root)


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception to OpenAI's envelope."""

    async def gateway_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, GatewayError)
        return error_response(exc)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(_validation_error(exc))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        error = GatewayError(str(exc.detail), code="not_found" if exc.status_code == 404 else None)
        error.status_code = exc.status_code
        return error_response(error)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        error = GatewayError("The gateway failed unexpectedly; see its log", code="internal_error")
        error.status_code, error.type = 500, "server_error"
        return error_response(error)

    app.add_exception_handler(GatewayError, gateway_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
