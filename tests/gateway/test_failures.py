"""When the guard cannot answer: 503 guard_unavailable (fail closed) or marked results (fail open),
and the gateway recovers by itself when the guard is back."""

from __future__ import annotations

import httpx
from fastapi.testclient import TestClient

from guard_client.testing import FakeVLLM
from tests.gateway.conftest import GatewayFactory, metric


def test_fail_closed_is_503_guard_unavailable_then_recovers(gateway: TestClient, fake: FakeVLLM) -> None:
    fake.down = True
    reply = gateway.post("/v1/moderations", json={"input": ["hello", "world"]})
    assert reply.status_code == 503
    assert reply.json()["error"]["type"] == "guard_unavailable"
    assert int(reply.headers["retry-after"]) == 5
    assert metric(gateway, "guard_gateway_fail_closed_total", endpoint="moderations") == 2
    assert metric(gateway, "guard_gateway_guard_errors_total") == 2
    assert gateway.get("/ready").status_code == 503

    fake.down = False
    reply = gateway.post("/v1/moderations", json={"input": ["hello", "world"]})
    assert reply.status_code == 200 and [r["flagged"] for r in reply.json()["results"]] == [False, False]
    assert gateway.get("/ready").status_code == 200


def test_unreadable_guard_output_fails_closed(gateway: TestClient, fake: FakeVLLM) -> None:
    fake.reply = lambda body: "I cannot say."
    reply = gateway.post("/beta/litellm_basic_guardrail_api", json={"input_type": "request", "texts": ["hi"]})
    assert reply.status_code == 503 and reply.json()["error"]["type"] == "guard_unavailable"


def test_guard_http_errors_fail_closed(gateway: TestClient, fake: FakeVLLM) -> None:
    gateway.post("/v1/moderations", json={"input": "warm"})  # the model list is known
    fake.script = [httpx.Response(500, json={"error": {"message": "engine dead"}})]
    reply = gateway.post("/v1/guard/checks", json={"checks": [{"messages": [{"role": "user", "content": "x"}]}]})
    assert reply.status_code == 503 and "engine dead" in reply.json()["error"]["message"]


def test_fail_open_marks_and_counts_and_never_reads_safe(make_gateway: GatewayFactory, fake: FakeVLLM) -> None:
    gateway = make_gateway(**{"policy.on_guard_failure": "fail_open"})
    fake.down = True
    reply = gateway.post("/v1/moderations", json={"input": ["a", "b"]})
    assert reply.status_code == 200
    for result in reply.json()["results"]:
        assert result["flagged"] is False
        assert result["qwen3guard"]["severity"] is None  # not Safe: undecided
        assert result["qwen3guard"]["policy"] == "fail_open" and result["qwen3guard"]["error"]
    assert metric(gateway, "guard_gateway_fail_open_total", endpoint="moderations") == 2

    checks = gateway.post("/v1/guard/checks", json={"checks": [{"messages": [{"role": "user", "content": "x"}]}]})
    result = checks.json()["results"][0]
    assert result["safety"] is None and result["policy"] == "fail_open" and result["action"] == "allow"
    litellm = gateway.post("/beta/litellm_basic_guardrail_api", json={"input_type": "request", "texts": ["hi"]})
    assert litellm.json() == {"action": "NONE"}


def test_failed_checks_are_not_cached(gateway: TestClient, fake: FakeVLLM) -> None:
    fake.down = True
    assert gateway.post("/v1/moderations", json={"input": "a bomb"}).status_code == 503
    fake.down = False
    assert gateway.post("/v1/moderations", json={"input": "a bomb"}).json()["results"][0]["flagged"] is True
