"""The async client's default wire (aiohttp, used directly) over real sockets: what it sends, and how
each way the trip can fail reaches the caller. Behaviour shared with the other wires runs for all three
in test_client.py (the `async-wire` kind)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from guard_client import AsyncGuardClient, GuardConnectionError, GuardTimeoutError
from guard_client.testing import FakeVLLM, served_over_http


@pytest.fixture
def listening_silently() -> Iterator[str]:
    """A server that accepts connections and never answers."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        yield f"http://127.0.0.1:{silent.getsockname()[1]}"


def test_requests_carry_the_clients_headers_and_the_json_body() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return FakeVLLM()(request)

    async def run(url: str) -> None:
        async with AsyncGuardClient(url, api_key="sk-test", max_retries=0) as guard:
            await guard.check_prompt("héllo", constrain=True)

    with served_over_http(handler, stall_s=0) as url:
        asyncio.run(run(url))
    assert [r.url.path for r in seen] == ["/v1/models", "/v1/chat/completions"]
    for request in seen:
        assert request.headers["authorization"] == "Bearer sk-test"
        assert request.headers["user-agent"].startswith("qwen3guard-client/")
    post = seen[1]
    assert post.headers["content-type"] == "application/json"
    body = json.loads(post.content)
    assert body["messages"] == [{"role": "user", "content": "héllo"}]
    assert "héllo".encode() in post.content  # UTF-8 as it is, as httpx's json= sends it


def test_a_refused_connection_is_unreachable_not_slow() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"

    async def run() -> None:
        async with AsyncGuardClient(url, max_retries=0) as guard:
            await guard.server_info()

    with pytest.raises(GuardConnectionError, match="cannot reach the guard") as info:
        asyncio.run(run())
    assert not isinstance(info.value, GuardTimeoutError)


def test_a_server_that_never_answers_times_out_after_the_timeout(listening_silently: str) -> None:
    async def run() -> None:
        async with AsyncGuardClient(listening_silently, timeout=0.3, max_retries=0) as guard:
            await guard.check_prompt("anyone?")

    started = time.monotonic()
    with pytest.raises(GuardTimeoutError, match="no answer from"):
        asyncio.run(run())
    assert 0.3 <= time.monotonic() - started < 5


def test_one_client_serves_successive_event_loops() -> None:
    """`asyncio.run` twice with one client: the second loop gets a session of its own."""
    fake = FakeVLLM()
    with served_over_http(fake, stall_s=0) as url:
        guard = AsyncGuardClient(url, max_retries=0)
        first = asyncio.run(guard.check_prompt("one"))
        second = asyncio.run(guard.check_prompt("two"))
        asyncio.run(guard.aclose())
    assert first.decided and second.decided
    assert fake.paths() == ["/v1/models", "/v1/chat/completions", "/v1/chat/completions"]
