"""Routes of the chat proxy: `POST /v1/chat/completions` (guarded), `GET /v1/models` (proxied) and the
configured passthrough routes (proxied unguarded, by explicit configuration only)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable

from fastapi import APIRouter, Request
from starlette.responses import Response

from guard_gateway.chat.upstream import streamed
from guard_gateway.state import gateway_state

router = APIRouter()


async def until_disconnect(request: Request, work: Awaitable[Response]) -> Response:
    """Run `work`; if the client leaves first, cancel it (its upstream request and pending checks with it)."""
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
        return Response(status_code=499)  # nobody is listening; for the access log only
    return task.result()


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    raw = await request.body()
    service = gateway_state(request).chat
    return await until_disconnect(request, service.create(raw, request.headers))


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
    return streamed(response)
