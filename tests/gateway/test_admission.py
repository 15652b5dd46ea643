"""The admission limit: past `limits.max_in_flight` requests in flight, an immediate 429 with Retry-After
in OpenAI's envelope (no queue); probes, metrics and the OpenAPI document are never refused."""

from __future__ import annotations

import asyncio

import httpx

from guard_client.testing import FakeVLLM
from guard_gateway import create_app, load_config


def test_past_the_limit_429_with_retry_after_and_the_slot_frees_when_a_request_ends() -> None:
    fake = FakeVLLM()
    gate = asyncio.Event()
    both_held = asyncio.Event()
    held_count = 0

    async def held_guard(request: httpx.Request) -> httpx.Response:
        nonlocal held_count
        if request.url.path == "/v1/chat/completions":
            held_count += 1
            if held_count == 2:
                both_held.set()
            await gate.wait()
        return fake(request)

    overrides = {"limits.max_in_flight": "2", "limits.retry_after_seconds": "3", "guard.max_retries": "0"}
    app = create_app(load_config(overrides=overrides, environ={}), guard_transport=httpx.MockTransport(held_guard))

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:

            def moderate(text: str) -> asyncio.Task[httpx.Response]:
                return asyncio.ensure_future(client.post("/v1/moderations", json={"input": text}))

            held = [moderate("first"), moderate("second")]
            await asyncio.wait_for(both_held.wait(), timeout=30)  # both are now waiting on the guard
            refused = await client.post("/v1/moderations", json={"input": "third"})
            assert refused.status_code == 429
            assert refused.headers["retry-after"] == "3"
            error = refused.json()["error"]
            assert error["code"] == "rate_limit_exceeded" and error["type"] == "requests"
            assert set(error) == {"message", "type", "param", "code"}
            for open_route in ("/health", "/metrics", "/openapi.json"):
                assert (await client.get(open_route)).status_code == 200, open_route
            assert "guard_gateway_overloaded_total 1.0" in (await client.get("/metrics")).text
            gate.set()
            assert [(await task).status_code for task in held] == [200, 200]
            assert (await client.post("/v1/moderations", json={"input": "fourth"})).status_code == 200

    asyncio.run(scenario())
