"""Fakes for the batch runner and `guard screen`: the unit tests' fake vLLM with answers chosen by markers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from guard_client import AsyncGuardClient, GuardMode, ServerInfo, Verdict, parse_verdict
from guard_client.testing import FakeVLLM, marked_fake, marked_reply


def fake_guard(**kwargs: Any) -> FakeVLLM:
    return marked_fake(**kwargs)


def fake_client(
    fake: Callable[[httpx.Request], httpx.Response], url: str = "http://fake-guard", delay_s: float = 0.0
) -> AsyncGuardClient:
    """An AsyncGuardClient answered in process by `fake`, after `delay_s` (a slower replica)."""

    async def handler(request: httpx.Request) -> httpx.Response:
        if delay_s:
            await asyncio.sleep(delay_s)
        return fake(request)

    return AsyncGuardClient(url, transport=httpx.MockTransport(handler), max_retries=0)


def dead_client(url: str = "http://dead-guard") -> AsyncGuardClient:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    return AsyncGuardClient(url, transport=httpx.MockTransport(handler), max_retries=0)


class InstantGuard:
    """A guard that answers in process without HTTP (the client surface the runner uses), for runs of
    100,000 rows in seconds. `on_check(n)` is called with the number of checks so far."""

    def __init__(self, base_url: str = "http://instant", on_check: Callable[[int], None] = lambda n: None) -> None:
        self.base_url = base_url
        self.checks = 0
        self.on_check = on_check

    async def server_info(self) -> ServerInfo:
        return ServerInfo(model="qwen3guard", root="/models/Qwen3Guard-Gen-0.6B", max_model_len=8192)

    async def check(self, messages: list[dict[str, str]], **options: Any) -> Verdict:
        self.checks += 1
        self.on_check(self.checks)
        mode = GuardMode.RESPONSE if messages[-1]["role"] == "assistant" else GuardMode.PROMPT
        return parse_verdict(marked_reply({"messages": messages}), mode)

    async def aclose(self) -> None:
        pass
