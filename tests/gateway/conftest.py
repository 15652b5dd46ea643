"""A gateway app in process, in front of the fake vLLM of guard_client.testing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from guard_client.testing import FakeVLLM
from guard_gateway import create_app, load_config

GatewayFactory = Callable[..., TestClient]


def last_content(body: dict[str, Any]) -> str:
    return str(body["messages"][-1]["content"])


def reply_by_content(body: dict[str, Any]) -> str:
    """Unsafe/Violent when the checked text says 'bomb', Controversial for 'maybe', else Safe."""
    text = last_content(body)
    if "bomb" in text:
        return "Safety: Unsafe\nCategories: Violent"
    if "maybe" in text:
        return "Safety: Controversial\nCategories: Politically Sensitive Topics"
    if body["messages"][-1]["role"] == "assistant":
        return "Safety: Safe\nCategories: None\nRefusal: Yes"
    return "Safety: Safe\nCategories: None"


@pytest.fixture
def fake() -> FakeVLLM:
    return FakeVLLM(reply=reply_by_content)


@pytest.fixture
def make_gateway(fake: FakeVLLM) -> Iterator[GatewayFactory]:
    """`make_gateway(**{"cache.enabled": "false"})`: a TestClient of a gateway configured by dotted overrides
    (and, first and positional, a handler playing the upstream main LLM)."""
    clients: list[TestClient] = []

    def make(main_llm: Callable[[httpx.Request], Any] | None = None, /, **overrides: str) -> TestClient:
        settings = {"guard.max_retries": "0", "guard.ready_ttl_seconds": "0", **overrides}
        app = create_app(
            load_config(overrides=settings, environ={}),
            guard_transport=httpx.MockTransport(fake),
            upstream_transport=httpx.MockTransport(main_llm) if main_llm is not None else None,
        )
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def gateway(make_gateway: GatewayFactory) -> TestClient:
    return make_gateway()


def chat_calls(fake: FakeVLLM) -> int:
    return fake.paths().count("/v1/chat/completions")


def metric(client: TestClient, name: str, **labels: str) -> float:
    """A sample's value from /metrics (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


# The chat proxy's fixtures (the scripted main LLM and a gateway in front of it and the fake guard).
from tests.gateway.chat_fakes import make_chat, upstream  # noqa: E402, F401
