"""Each client behaviour test runs against both twins, through one blocking interface: the blocking client
and the async one over an httpx transport (the fake vLLM in process), and the async client over its default
aiohttp wire (the same fake behind a real socket)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from guard_client import AsyncGuardClient, GuardClient
from guard_client.testing import FakeVLLM, served_over_http
from tests.conftest import on_server_start_thread

Handler = Callable[[httpx.Request], httpx.Response]


class Guard:
    """A `GuardClient` or an `AsyncGuardClient` (its coroutines run to completion in one event loop) over a
    fake vLLM."""

    #: The wire client's timeout unless a test sets one: the fake's stalls outlast it quickly, and an answer
    #: on a busy 2-core machine does not (at 0.5 s a slow answer was retried, and a count of requests failed).
    WIRE_TIMEOUT = 1.5

    def __init__(self, kind: str, handler: Handler, **kwargs: Any) -> None:
        self.kind = kind
        self._stack = ExitStack()
        self._runner = self._stack.enter_context(asyncio.Runner())
        if kind == "async-wire":
            kwargs.setdefault("timeout", self.WIRE_TIMEOUT)
            url = self._stack.enter_context(served_over_http(handler, stall_s=kwargs["timeout"] + 0.5))
            self.client: GuardClient | AsyncGuardClient = AsyncGuardClient(url, **kwargs)
        elif kind == "sync":
            self.client = GuardClient("http://guard.test", transport=httpx.MockTransport(handler), **kwargs)
        else:
            self.client = AsyncGuardClient("http://guard.test", transport=httpx.MockTransport(handler), **kwargs)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)
        if self.kind == "sync":
            return method
        return lambda *args, **kwargs: self._runner.run(method(*args, **kwargs))

    def __enter__(self) -> Guard:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._stack:
            if isinstance(self.client, GuardClient):
                self.client.close()
            else:
                self._runner.run(self.client.aclose())


MakeGuard = Callable[..., Guard]


@pytest.fixture(params=["sync", "async", "async-wire"])
def make(request: pytest.FixtureRequest) -> MakeGuard:
    """`make(fake_or_handler, **client_kwargs)`: a client of each kind in turn."""

    def factory(handler: FakeVLLM | Handler, **kwargs: Any) -> Guard:
        return Guard(request.param, handler, **kwargs)

    return factory


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """Retry back-off without waiting, for both clients; records each wait."""
    waits: list[float] = []

    async def async_sleep(seconds: float) -> None:
        waits.append(seconds)

    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        if on_server_start_thread():
            real_sleep(seconds)  # a session server starting in the background really waits
        else:
            waits.append(seconds)

    monkeypatch.setattr("time.sleep", sleep)
    monkeypatch.setattr("asyncio.sleep", async_sleep)
    yield waits
