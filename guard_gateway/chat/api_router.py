"""Routes of the chat proxy: `POST /v1/chat/completions` (guarded), `GET /v1/models` (proxied) and the
configured passthrough routes (proxied unguarded, by explicit configuration only). The guarded route turns
`ChatService`'s answer into HTTP: JSON, the upstream's own answer as it came, or a stream of its SSE frames."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio
from fastapi import APIRouter, Request
from starlette.background import BackgroundTask
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from guard_gateway.chat.serving import ChatAnswer, StreamedAnswer, UpstreamAnswer
from guard_gateway.chat.upstream import returned_headers
from guard_gateway.state import gateway_state

router = APIRouter()

T = TypeVar("T")


async def until_disconnect(request: Request, work: Awaitable[T]) -> T | None:
    """Run `work`; if the client leaves first, cancel it (its upstream request and pending checks with it): None."""
    task = asyncio.ensure_future(work)

    async def left() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(left())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, watcher):
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending
    if task.cancelled():
        return None
    return task.result()


class DisconnectAwareStream(StreamingResponse):
    """A streaming response that notices a client leaving even while it has nothing to send (a held
    stream can be silent for a check), whatever ASGI version the server speaks, and then closes the
    frames (the upstream request and pending checks)."""

    def __init__(
        self, content: AsyncIterator[bytes], *, on_close: Callable[[], Awaitable[None]], **kwargs: Any
    ) -> None:
        super().__init__(content, **kwargs)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def stream() -> None:
                    with contextlib.suppress(OSError):
                        await self.stream_response(send)
                    group.cancel_scope.cancel()

                group.start_soon(stream)
                await self.listen_for_disconnect(receive)
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._on_close()
        if self.background is not None:
            await self.background()


def http_response(answer: ChatAnswer) -> Response:
    if isinstance(answer, StreamedAnswer):
        return DisconnectAwareStream(
            answer.frames, media_type="text/event-stream", headers=answer.headers, on_close=answer.aclose
        )
    if isinstance(answer, UpstreamAnswer):
        return Response(answer.content, status_code=answer.status_code, headers=answer.headers)
    return JSONResponse(answer.answer, headers=answer.headers)


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    raw = await request.body()
    service = gateway_state(request).chat
    answer = await until_disconnect(request, service.create(raw, request.headers))
    if answer is None:
        return Response(status_code=499)  # nobody is listening; for the access log only
    return http_response(answer)


@router.get("/v1/models")
async def models(request: Request) -> Response:
    return await proxy(request)


async def proxy(request: Request) -> Response:
    """Forward a request to the upstream as it is and its answer back as it comes (unguarded)."""
    upstream = gateway_state(request).chat.upstream
    body = await request.body()
    path = request.url.path.removeprefix("/v1")
    response = await upstream.open(
        request.method, path, upstream.headers(request.headers), body or None, request.url.query
    )

    async def content() -> AsyncIterator[bytes]:
        async for chunk in response.aiter_bytes():  # decoded: content-encoding is not passed back
            yield chunk

    return StreamingResponse(
        content(),
        status_code=response.status_code,
        headers=returned_headers(response),
        background=BackgroundTask(response.aclose),
    )
