"""The chat proxy's test fixtures: the scripted main LLM (loadtest/fake_llm.py) and a gateway in front of
it and the fake guard; helpers that read what a streaming client received."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from guard_gateway import create_app, load_config
from loadtest.fake_llm import FakeUpstream
from tests.fake_vllm import FakeVLLM


def sse_events(text: str) -> list[Any]:
    """The data payloads of an SSE body, JSON-decoded, `[DONE]` as the string."""
    events: list[Any] = []
    for block in text.split("\n\n"):
        if block.startswith("data: "):
            payload = block[len("data: ") :]
            events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def streamed_text(events: list[Any]) -> str:
    """Everything of the answer a client assembled from stream events."""
    text = ""
    for event in events:
        if isinstance(event, dict):
            for choice in event.get("choices") or []:
                delta = choice.get("delta") or {}
                text += delta.get("content") or ""
                for call in delta.get("tool_calls") or []:
                    text += (call.get("function") or {}).get("arguments") or ""
    return text


ChatFactory = Callable[..., TestClient]


@pytest.fixture
def upstream() -> FakeUpstream:
    return FakeUpstream()


@pytest.fixture
def make_chat(fake: FakeVLLM, upstream: FakeUpstream) -> Iterator[ChatFactory]:
    clients: list[TestClient] = []

    def make(**overrides: str) -> TestClient:
        settings = {
            "guard.max_retries": "0",
            "upstream.url": "http://main-llm/v1",
            "cache.enabled": "false",
            **overrides,
        }
        settings = {key: value for key, value in settings.items() if value != "<unset>"}
        app = create_app(
            load_config(overrides=settings, environ={}),
            guard_transport=httpx.MockTransport(fake),
            upstream_transport=httpx.MockTransport(upstream),
        )
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)
