"""The gateway's `models:`: more guard models by served name, each with its policy file; a request's `model`
picks one (moderations, native checks, LiteLLM), the base guard by default, an unknown model a 404; a
policy file that does not validate stops the start naming the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from guard_client.testing import FakeVLLM
from guard_gateway import load_config
from guard_gateway.config import ConfigError
from tests.conftest import TEST_ADAPTER_POLICY
from tests.gateway.conftest import GatewayFactory, last_content


def reply_by_model(body: dict[str, Any]) -> str:
    """The acme adapter flags a competitor; the base guard flags a bomb. (A custom policy's check is a
    completion of the rendered prompt, the default policy's a chat request.)"""
    text = last_content(body) if "messages" in body else str(body["prompt"])
    if body["model"] == "acme" and "ACME" in text:
        return "Safety: Unsafe\nCategories: Competitor Mention"
    if body["model"] == "qwen3guard" and "bomb" in text:
        return "Safety: Unsafe\nCategories: Violent"
    return "Safety: Safe\nCategories: None"


@pytest.fixture
def fake() -> FakeVLLM:
    return FakeVLLM(reply=reply_by_model, adapters=("acme",))


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "guard_policy.yaml"
    path.write_text(TEST_ADAPTER_POLICY)
    return path


@pytest.fixture
def gateway(make_gateway: GatewayFactory, policy_file: Path) -> TestClient:
    return make_gateway(models=f"{{acme: {{policy: {policy_file}}}}}")


def test_a_requests_model_picks_the_adapter_and_its_policy(gateway: TestClient, fake: FakeVLLM) -> None:
    reply = gateway.post("/v1/moderations", json={"model": "acme", "input": ["Buy the ACME phone", "a bomb"]})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["model"] == "acme"
    flagged, safe = body["results"]
    assert flagged["flagged"] is True and safe["flagged"] is False
    assert flagged["qwen3guard"]["labels"] == ["Competitor Mention"]
    assert not any(flagged["categories"].values()), "Competitor Mention maps onto no OpenAI key"
    # The guard's input lists the adapter's categories, never the model's own nine.
    (sent,) = [body for path, body in fake.calls if path == "/v1/completions" and body and "ACME" in body["prompt"]]
    assert sent["model"] == "acme"
    assert "Competitor Mention. Names or praises a competitor's product." in sent["prompt"]
    assert "Violent" not in sent["prompt"]


def test_the_base_guard_stays_the_default(gateway: TestClient, fake: FakeVLLM) -> None:
    for model in (None, "qwen3guard", "omni-moderation-latest"):
        body = {"input": "Buy the ACME phone, or a bomb"} | ({"model": model} if model else {})
        reply = gateway.post("/v1/moderations", json=body)
        assert reply.status_code == 200 and reply.json()["model"] == "qwen3guard"
        assert reply.json()["results"][0]["qwen3guard"]["labels"] == ["Violent"]


def test_an_unknown_model_is_a_404_listing_what_is_served(gateway: TestClient) -> None:
    reply = gateway.post("/v1/moderations", json={"model": "bank", "input": "hi"})
    assert reply.status_code == 404
    error = reply.json()["error"]
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert "'bank' does not exist here; this gateway serves: qwen3guard, acme, " in error["message"]
    checks = gateway.post("/v1/guard/checks", json={"model": "bank", "checks": [{"messages": []}]})
    assert checks.status_code == 404


def test_native_checks_pick_the_model_too(gateway: TestClient) -> None:
    conversation = {"messages": [{"role": "user", "content": "Is ACME better?"}]}
    reply = gateway.post("/v1/guard/checks", json={"model": "acme", "checks": [conversation]})
    assert reply.status_code == 200, reply.text
    (result,) = reply.json()["results"]
    assert reply.json()["model"] == "acme"
    assert (result["safety"], result["categories"], result["action"]) == ("Unsafe", ["Competitor Mention"], "block")


def test_litellm_picks_a_served_guard_model_and_otherwise_the_base(gateway: TestClient) -> None:
    # LiteLLM's `model` is the guarded call's LLM; a name the gateway serves picks that guard.
    ask = {"input_type": "request", "texts": ["Is ACME better?"]}
    assert gateway.post("/beta/litellm_basic_guardrail_api", json={**ask, "model": "acme"}).json()["action"] == (
        "BLOCKED"
    )
    assert gateway.post("/beta/litellm_basic_guardrail_api", json={**ask, "model": "gpt-4o"}).json()["action"] == (
        "NONE"
    )


def test_ready_only_when_every_guard_model_is_served(make_gateway: GatewayFactory, policy_file: Path) -> None:
    gateway = make_gateway(models=f"{{acme: {{policy: {policy_file}}}, bank: {{policy: {policy_file}}}}}")
    reply = gateway.get("/ready")
    assert reply.status_code == 503
    assert "model 'bank' is not served" in reply.json()["detail"]


def test_verdicts_are_cached_per_model(gateway: TestClient, fake: FakeVLLM) -> None:
    for model in ("acme", "qwen3guard", "acme"):
        gateway.post("/v1/moderations", json={"model": model, "input": "ACME"})
    checks = [body["model"] for path, body in fake.calls if path.endswith("/completions") and body]
    assert checks == ["acme", "qwen3guard"]


def test_a_policy_file_that_does_not_validate_stops_the_start(tmp_path: Path) -> None:
    bad = tmp_path / "guard_policy.yaml"
    bad.write_text("name: acme\ncategories:\n  - name: Fraud\n    modes: [chat]\n")
    with pytest.raises(ConfigError) as refused:
        load_config(overrides={"models": f"{{acme: {{policy: {bad}}}}}"}, environ={})
    message = str(refused.value)
    assert "\n" not in message
    assert f"models.acme.policy: Value error, {bad}: categories[0].modes[0]" in message


def test_a_missing_policy_file_and_a_taken_name_stop_the_start(tmp_path: Path, policy_file: Path) -> None:
    with pytest.raises(ConfigError, match=r"models\.acme\.policy: .*cannot read the policy file"):
        load_config(overrides={"models": f"{{acme: {{policy: {tmp_path / 'none.yaml'}}}}}"}, environ={})
    with pytest.raises(ConfigError, match="qwen3guard is already the base guard's name or an alias"):
        load_config(overrides={"models": f"{{qwen3guard: {{policy: {policy_file}}}}}"}, environ={})
    with pytest.raises(ConfigError, match=r"guard\.policy: .*cannot read the policy file"):
        load_config(overrides={"guard.policy": str(tmp_path / "none.yaml")}, environ={})
