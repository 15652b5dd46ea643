"""The chat proxy's test fixtures: the scripted main LLM (guard_gateway.testing) and a gateway in front of
it and the fake guard; helpers that read what a streaming client received."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from guard_gateway.testing import FakeUpstream


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
def make_chat(make_gateway: Callable[..., TestClient], upstream: FakeUpstream) -> ChatFactory:
    """A gateway in front of the fake guard and the scripted main LLM; '<unset>' drops a default."""

    def make(**overrides: str) -> TestClient:
        settings = {"upstream.url": "http://main-llm/v1", "cache.enabled": "false", **overrides}
        settings = {key: value for key, value in settings.items() if value != "<unset>"}
        return make_gateway(upstream, **settings)

    return make
