"""Each client behaviour test runs against both twins, through one blocking interface."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from guard_client import AsyncGuardClient, GuardClient
from tests.fake_vllm import FakeVLLM

Handler = Callable[[httpx.Request], httpx.Response]


class Guard:
    """A `GuardClient` or an `AsyncGuardClient` (its coroutines run to completion) over a fake vLLM."""

    def __init__(self, kind: str, handler: Handler, **kwargs: Any) -> None:
        self.kind = kind
        transport = httpx.MockTransport(handler)
        self.client: GuardClient | AsyncGuardClient = (
            GuardClient("http://guard.test", transport=transport, **kwargs)
            if kind == "sync"
            else AsyncGuardClient("http://guard.test", transport=transport, **kwargs)
        )

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)
        if self.kind == "sync":
            return method
        return lambda *args, **kwargs: asyncio.run(method(*args, **kwargs))

    def __enter__(self) -> Guard:
        return self

    def __exit__(self, *exc: object) -> None:
        if isinstance(self.client, GuardClient):
            self.client.close()
        else:
            asyncio.run(self.client.aclose())


MakeGuard = Callable[..., Guard]


@pytest.fixture(params=["sync", "async"])
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

    monkeypatch.setattr("tenacity.nap.time.sleep", waits.append)
    monkeypatch.setattr("asyncio.sleep", async_sleep)
    yield waits
