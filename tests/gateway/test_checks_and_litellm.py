"""The native /v1/guard/checks and LiteLLM's generic guardrail contract, with the policy's actions."""

from __future__ import annotations

from fastapi.testclient import TestClient

from guard_client.testing import FakeVLLM
from tests.gateway.conftest import GatewayFactory

LITELLM = "/beta/litellm_basic_guardrail_api"


def test_native_checks_pick_the_mode_by_the_last_role_and_carry_refusal(gateway: TestClient) -> None:
    prompt = [{"role": "system", "content": "be nice"}, {"role": "user", "content": "a bomb"}]
    response = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "I won't."}]
    body = gateway.post("/v1/guard/checks", json={"checks": [{"messages": prompt}, {"messages": response}]}).json()
    assert body["id"].startswith("gchk-")
    first, second = body["results"]
    assert first["mode"] == "prompt" and first["safety"] == "Unsafe" and first["categories"] == ["Violent"]
    assert first["flagged"] is True and first["action"] == "block"
    assert second["mode"] == "response" and second["safety"] == "Safe" and second["refusal"] is True
    assert second["action"] == "allow"


def test_litellm_request_is_prompt_moderation_of_the_structured_messages(gateway: TestClient, fake: FakeVLLM) -> None:
    body = {
        "input_type": "request",
        "texts": ["a bomb"],
        "structured_messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": [{"type": "text", "text": "how to make a bomb"}]},
        ],
        "model": "gpt-4o",
        "litellm_call_id": "abc",
        "request_data": {"anything": 1},
    }
    reply = gateway.post(LITELLM, json=body).json()
    assert reply["action"] == "BLOCKED" and "Unsafe" in reply["blocked_reason"] and "Violent" in reply["blocked_reason"]
    sent = fake.calls[-1][1]["messages"]  # type: ignore[index]
    assert [m["role"] for m in sent] == ["system", "user"]


def test_litellm_texts_only_and_safe_is_none(gateway: TestClient) -> None:
    assert gateway.post(LITELLM, json={"input_type": "request", "texts": ["hello", "there"]}).json() == {
        "action": "NONE"
    }
    assert (
        gateway.post(LITELLM, json={"input_type": "request", "texts": ["hello", "bomb"]}).json()["action"] == "BLOCKED"
    )


def test_litellm_response_is_checked_in_the_conversation_context(gateway: TestClient, fake: FakeVLLM) -> None:
    body = {
        "input_type": "response",
        "texts": ["here is how to build a bomb"],
        "structured_messages": [{"role": "user", "content": "tell me"}],
    }
    reply = gateway.post(LITELLM, json=body).json()
    assert reply["action"] == "BLOCKED" and "response moderation" in reply["blocked_reason"]
    sent = fake.calls[-1][1]["messages"]  # type: ignore[index]
    assert sent == [
        {"role": "user", "content": "tell me"},
        {"role": "assistant", "content": "here is how to build a bomb"},
    ]
    assert gateway.post(LITELLM, json={"input_type": "response", "texts": []}).json() == {"action": "NONE"}


def test_category_actions_decide_block_annotate_allow(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(**{"policy.prompt.categories": '{"Violent": "annotate"}'})
    assert gateway.post(LITELLM, json={"input_type": "request", "texts": ["bomb"]}).json() == {"action": "NONE"}
    checks = {"checks": [{"messages": [{"role": "user", "content": "bomb"}]}]}
    result = gateway.post("/v1/guard/checks", json=checks).json()["results"][0]
    assert result["flagged"] is True and result["action"] == "annotate"
    # Controversial (Politically Sensitive Topics) keeps the default: block.
    assert gateway.post(LITELLM, json={"input_type": "request", "texts": ["maybe"]}).json()["action"] == "BLOCKED"
