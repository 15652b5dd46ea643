"""Every bad request is a 4xx in OpenAI's error envelope naming the parameter; never a 5xx."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.fake_vllm import FakeVLLM
from tests.gateway.conftest import GatewayFactory


def assert_error(reply: Any, status: int, param: str | None, code: str | None = None) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    return error  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "input"),
        ({"model": "qwen3guard"}, "input"),
        ({"input": 3}, "input"),
        ({"input": {"text": "x"}}, "input"),
        ({"input": ["a", 3]}, "input"),
        ({"input": []}, "input"),
        ({"input": [{"type": "image_url", "image_url": {"url": "https://x/cat.png"}}]}, "input"),
        ({"input": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "u"}}]}, "input"),
        ({"input": "x", "model": 7}, "model"),
    ],
)
def test_bad_moderation_bodies(gateway: TestClient, fake: FakeVLLM, body: dict[str, Any], param: str) -> None:
    assert_error(gateway.post("/v1/moderations", json=body), 400, param)
    assert fake.paths().count("/v1/chat/completions") == 0


def test_image_part_message_names_the_guard_reads_text_only(gateway: TestClient) -> None:
    body = {"input": [{"type": "image_url", "image_url": {"url": "u"}}]}
    assert "text only" in assert_error(gateway.post("/v1/moderations", json=body), 400, "input")["message"]


def test_unknown_model(gateway: TestClient) -> None:
    assert_error(
        gateway.post("/v1/moderations", json={"input": "x", "model": "gpt-4o"}), 404, "model", "model_not_found"
    )


def test_too_many_inputs(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(**{"moderations.max_inputs": "3"})
    assert gateway.post("/v1/moderations", json={"input": ["a"] * 3}).status_code == 200
    assert_error(gateway.post("/v1/moderations", json={"input": ["a"] * 4}), 400, "input")


def test_malformed_json(gateway: TestClient) -> None:
    reply = gateway.post("/v1/moderations", content=b'{"input": ', headers={"content-type": "application/json"})
    assert "JSON" in assert_error(reply, 400, None)["message"]


def test_body_over_the_limit_by_content_length(make_gateway: GatewayFactory, fake: FakeVLLM) -> None:
    gateway = make_gateway(**{"limits.max_body_bytes": "2048"})
    reply = gateway.post("/v1/moderations", json={"input": "x" * 4096})
    assert_error(reply, 413, None, "request_too_large")
    assert fake.calls == []


def test_body_over_the_limit_when_streamed_without_length(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(**{"limits.max_body_bytes": "2048"})
    chunks = iter([b'{"input": "', b"x" * 1500, b"x" * 1500, b'"}'])
    reply = gateway.post("/v1/moderations", content=chunks, headers={"content-type": "application/json"})
    assert_error(reply, 413, None, "request_too_large")


def test_input_longer_than_the_guard_accepts_without_chunking(make_gateway: GatewayFactory, fake: FakeVLLM) -> None:
    fake.max_model_len = 600
    gateway = make_gateway(**{"guard.chunk": "false"})
    reply = gateway.post("/v1/moderations", json={"input": ["short", " ".join(["word"] * 1500)]})
    assert "chunk" in assert_error(reply, 400, "input[1]")["message"]


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/guard/checks", {}, "checks"),
        ("/v1/guard/checks", {"checks": []}, "checks"),
        ("/v1/guard/checks", {"checks": [{"messages": []}]}, "checks[0].messages"),
        ("/v1/guard/checks", {"checks": [{"messages": [{"content": "no role"}]}]}, "checks[0].messages[0]"),
        ("/beta/litellm_basic_guardrail_api", {"texts": ["x"]}, "input_type"),
        ("/beta/litellm_basic_guardrail_api", {"input_type": "sideways"}, "input_type"),
    ],
)
def test_bad_bodies_of_the_other_endpoints(gateway: TestClient, path: str, body: dict[str, Any], param: str) -> None:
    assert_error(gateway.post(path, json=body), 400, param)


def test_unknown_route_is_a_404_in_the_envelope(gateway: TestClient) -> None:
    assert_error(gateway.post("/v1/embeddings", content=json.dumps({})), 404, None)
