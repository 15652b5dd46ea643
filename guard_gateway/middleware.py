"""Pure ASGI middleware (no per-request task or body copy): the admission limit, the body limit, and
the access log with the in-flight gauge and request counter. The access log holds method, path, status and duration,
never a body: checked text reaches the log only through `logging.log_checked_text`."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from guard_gateway.errors import BodyTooLarge, GatewayError, Overloaded
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


class AdmissionLimitMiddleware:
    """At most `max_in_flight` requests in flight (a stream counts until its end) on every route but the
    `exempt` ones (probes, metrics, the OpenAPI document); past it an immediate 429 with Retry-After in
    OpenAI's envelope, which the openai SDK retries. No queue forms in front of the guard, so memory
    stays bounded and no request waits past its timeout for a slot."""

    def __init__(
        self, app: ASGIApp, max_in_flight: int, retry_after: int, exempt: Collection[str], metrics: GatewayMetrics
    ) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.retry_after = retry_after
        self.exempt = frozenset(exempt)
        self.metrics = metrics
        self.in_flight = 0  # one event loop: no lock needed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            self.metrics.overloaded.inc()
            await _send_error(send, Overloaded(self.max_in_flight, self.retry_after))
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


async def _send_error(send: Send, error: GatewayError) -> None:
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
