"""Pure ASGI middleware (no per-request task or body copy): the body limit, and the access log with
the in-flight gauge and request counter. The access log holds method, path, status and duration,
never a body: checked text reaches the log only through `logging.log_checked_text`."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from guard_gateway.errors import BodyTooLarge
from guard_gateway.metrics import GatewayMetrics

access_log = logging.getLogger("guard_gateway.access")


class BodyLimitMiddleware:
    """413 for a body over the limit: at once from Content-Length, else as soon as the streamed
    body passes it, before it is buffered whole."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await _send_error(send, BodyTooLarge(self.max_bytes))
                return
        seen = 0
        refused = False

        async def limited() -> Message:
            # Past the limit: answer 413 now and tell the app the client left, so it stops reading.
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    refused = True
                    await _send_error(send, BodyTooLarge(self.max_bytes))
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, limited, guarded_send)


async def _send_error(send: Send, error: BodyTooLarge) -> None:
    body = json.dumps(error.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, metrics: GatewayMetrics, routes: Collection[str], access: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = frozenset(routes)
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, record)
        finally:
            self.metrics.in_flight.dec()
            path = scope["path"]
            # Unknown paths share one label so scanners cannot grow the metric without bound.
            self.metrics.requests.labels(path if path in self.routes else "other", str(status)).inc()
            if self.access:
                access_log.info(
                    '%s "%s %s" %d %.1fms',
                    (scope.get("client") or ("-",))[0],
                    scope["method"],
                    path,
                    status,
                    (time.perf_counter() - started) * 1000,
                )
