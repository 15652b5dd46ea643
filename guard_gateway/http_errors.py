"""The one place exceptions become HTTP: every error, the framework's own included, as OpenAI's envelope."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from guard_gateway.errors import GatewayError, InvalidRequest

log = logging.getLogger("guard_gateway")


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
