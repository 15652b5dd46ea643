"""Health, readiness, metrics, the verdict cache, bearer keys and the access log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from guard_client.testing import FakeVLLM
from tests.gateway.conftest import GatewayFactory, chat_calls, metric


def test_health_and_ready(gateway: TestClient) -> None:
    assert gateway.get("/health").json() == {"status": "ok"}
    ready = gateway.get("/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_not_ready_when_the_guard_serves_another_model(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(**{"guard.model": "llama-guard"})
    ready = gateway.get("/ready")
    assert ready.status_code == 503 and "llama-guard" in ready.json()["detail"]


def test_cache_hits_skip_the_guard_and_are_counted(gateway: TestClient, fake: FakeVLLM) -> None:
    first = gateway.post("/v1/moderations", json={"input": "a bomb"}).json()
    second = gateway.post("/v1/moderations", json={"input": "a bomb"}).json()
    assert chat_calls(fake) == 1
    assert first["results"] == second["results"] and first["id"] != second["id"]
    assert metric(gateway, "guard_gateway_cache_hits_total") == 1
    assert metric(gateway, "guard_gateway_cache_misses_total") == 1
    # The same text in another mode is another prompt: not a hit.
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a bomb"}]
    gateway.post("/v1/guard/checks", json={"checks": [{"messages": messages}]})
    assert chat_calls(fake) == 2


def test_cache_off_and_cache_expiry(make_gateway: GatewayFactory, fake: FakeVLLM) -> None:
    off = make_gateway(**{"cache.enabled": "false"})
    for _ in range(2):
        off.post("/v1/moderations", json={"input": "x"})
    assert chat_calls(fake) == 2
    tiny = make_gateway(**{"cache.max_entries": "1"})
    for text in ("x", "y", "x"):
        tiny.post("/v1/moderations", json={"input": text})
    assert chat_calls(fake) == 5  # y evicted x


def test_metrics_count_checks_by_endpoint_mode_verdict_and_category(gateway: TestClient) -> None:
    gateway.post("/v1/moderations", json={"input": ["a bomb", "hello"]})
    assert metric(gateway, "guard_gateway_checks_total", endpoint="moderations", mode="prompt", verdict="unsafe") == 1
    assert metric(gateway, "guard_gateway_checks_total", endpoint="moderations", mode="prompt", verdict="safe") == 1
    assert metric(gateway, "guard_gateway_check_categories_total", category="Violent") == 1
    assert metric(gateway, "guard_gateway_guard_latency_seconds_count") == 1
    assert metric(gateway, "guard_gateway_requests_total", route="/v1/moderations", status="200") == 1
    assert metric(gateway, "guard_gateway_requests_in_flight") == 1  # the /metrics request itself


@pytest.fixture
def keyed(make_gateway: GatewayFactory, tmp_path: Path) -> TestClient:
    keys = tmp_path / "keys"
    keys.write_text("from-file\n\n")
    return make_gateway(**{"auth.api_keys": "k1,k2", "auth.api_keys_file": str(keys)})


@pytest.mark.parametrize("key", ["k1", "k2", "from-file"])
def test_configured_keys_are_accepted(keyed: TestClient, key: str) -> None:
    reply = keyed.post("/v1/moderations", json={"input": "x"}, headers={"Authorization": f"Bearer {key}"})
    assert reply.status_code == 200


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        ({"Authorization": "Bearer nope"}, "invalid_api_key"),
        ({"Authorization": "k1"}, "invalid_api_key"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/moderations", "/v1/guard/checks", "/beta/litellm_basic_guardrail_api"])
def test_missing_or_wrong_key_is_401(
    keyed: TestClient, fake: FakeVLLM, path: str, headers: dict[str, str], code: str
) -> None:
    reply = keyed.post(path, json={"input": "x"}, headers=headers)
    assert reply.status_code == 401 and reply.json()["error"]["code"] == code
    assert reply.headers["www-authenticate"] == "Bearer"
    assert chat_calls(fake) == 0


def test_probes_and_metrics_need_no_key(keyed: TestClient) -> None:
    assert [keyed.get(p).status_code for p in ("/health", "/ready", "/metrics")] == [200, 200, 200]


def test_the_access_log_never_holds_checked_text_unless_asked(
    make_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "my-secret-text-42"
    with caplog.at_level(logging.DEBUG):
        make_gateway().post("/v1/moderations", json={"input": secret})
    assert "POST /v1/moderations" in caplog.text and secret not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        make_gateway(**{"logging.log_checked_text": "true"}).post("/v1/moderations", json={"input": secret})
    assert secret in caplog.text


def test_the_openapi_document_describes_the_error_envelope_of_every_protected_route(gateway: TestClient) -> None:
    """Fuzzers and client generators read the document: each protected route lists its errors in OpenAI's envelope."""
    document = gateway.get("/openapi.json").json()
    for path in ("/v1/moderations", "/v1/guard/checks", "/beta/litellm_basic_guardrail_api", "/v1/chat/completions"):
        responses = document["paths"][path]["post"]["responses"]
        for status in ("400", "401", "413", "429", "503"):
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (path, status)
    for path in ("/health", "/ready", "/metrics"):
        assert "401" not in document["paths"][path]["get"]["responses"]
