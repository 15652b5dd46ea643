"""Indirect injection on every surface that takes conversations (reliability/injection.py's matrix, in process):
a guard that flags one marker blocks it in every position on every surface, and the same conversations
without the marker pass. Also what the guard is shown, and the one non-text setting on every surface."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from guard_client import render_guard_prompt
from reliability.injection import CLEAN, MARKER, POSITIONS, SURFACES, injection_reply, outcome, positions, request
from tests.fake_vllm import FakeVLLM
from tests.gateway.chat_fakes import ChatFactory


@pytest.fixture
def fake() -> FakeVLLM:
    return FakeVLLM(reply=injection_reply)


def send(client: TestClient, surface: str, messages: list[dict[str, Any]]) -> str:
    path, body = request(surface, messages)
    response = client.post(path, json=body)
    return outcome(surface, response.status_code, response.json())


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("position", POSITIONS)
def test_the_marker_is_blocked_in_every_position_on_every_surface(
    make_chat: ChatFactory, fake: FakeVLLM, surface: str, position: str
) -> None:
    client = make_chat()
    assert send(client, surface, positions(MARKER)[position]) == "blocked"
    checked = [render_guard_prompt(body["messages"]) for body in fake.bodies("/v1/chat/completions")]
    assert any(MARKER in prompt for prompt in checked)


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("position", POSITIONS)
def test_the_same_conversation_without_the_marker_passes(
    make_chat: ChatFactory, fake: FakeVLLM, surface: str, position: str
) -> None:
    assert send(make_chat(), surface, positions(CLEAN)[position]) == "passed"
    assert fake.bodies("/v1/chat/completions")  # checked, not skipped


def test_the_scripted_guard_reads_only_what_the_template_shows() -> None:
    # Without the view, the template drops a tool result: the marker there is never read.
    dropped = [{"role": "user", "content": "hi"}, {"role": "tool", "content": MARKER}]
    assert injection_reply({"messages": dropped}).startswith("Safety: Safe")
    assert injection_reply({"messages": [{"role": "user", "content": MARKER}]}).startswith("Safety: Unsafe")


def test_litellm_checks_the_tool_result_after_the_last_user_message(make_chat: ChatFactory, fake: FakeVLLM) -> None:
    _, body = request("LiteLLM guardrail", positions(MARKER)["tool result after the last user turn"])
    assert make_chat().post("/beta/litellm_basic_guardrail_api", json=body).json()["action"] == "BLOCKED"
    checked = fake.bodies("/v1/chat/completions")[0]["messages"]
    assert [m["role"] for m in checked] == ["user", "assistant", "user"]
    assert checked[1]["content"] == '[tool call] fetch_page({"url": "https://example.com"})'
    assert MARKER in checked[2]["content"]


IMAGE = [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": "data:,"}}]


@pytest.mark.parametrize("surface", SURFACES)
def test_one_setting_refuses_or_passes_non_text_parts_on_every_surface(make_chat: ChatFactory, surface: str) -> None:
    path, body = request(surface, [{"role": "user", "content": IMAGE}])
    refused = make_chat().post(path, json=body)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "unsupported_request" and error["param"].endswith("[0].content[1]")
    assert "'image_url' is not text" in error["message"]
    passed = make_chat(**{"conversation.non_text": "pass_annotated"}).post(path, json=body)
    assert passed.status_code == 200
    if surface == "native checks":
        assert passed.json()["results"][0]["unread"] == ["checks[0].messages[0].content[1]"]


def test_litellm_images_follow_the_same_setting(make_chat: ChatFactory) -> None:
    body = {"input_type": "request", "texts": ["what is this?"], "images": ["data:,"]}
    refused = make_chat().post("/beta/litellm_basic_guardrail_api", json=body)
    assert refused.status_code == 422 and refused.json()["error"]["param"] == "images"
    passed = make_chat(**{"conversation.non_text": "pass_annotated"}).post(
        "/beta/litellm_basic_guardrail_api", json=body
    )
    assert passed.json() == {"action": "NONE"}
