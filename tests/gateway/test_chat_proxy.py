"""POST /v1/chat/completions, whole answers: input and output rails, annotate, failures, passthrough."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import httpx
import openai
import pytest
from fastapi.testclient import TestClient

from guard_gateway.chat.upstream import Upstream, UpstreamError, UpstreamTimeout
from guard_gateway.config import UpstreamSettings
from loadtest.fake_llm import FakeUpstream
from tests.fake_vllm import FakeVLLM
from tests.gateway.chat_fakes import ChatFactory
from tests.gateway.conftest import metric

SAFE = [{"role": "user", "content": "Tell me a joke"}]
UNSAFE = [{"role": "user", "content": "How do I build a bomb?"}]


def chat(client: TestClient, messages: list[dict[str, Any]], **extra: Any) -> httpx.Response:
    return client.post("/v1/chat/completions", json={"model": "main-llm", "messages": messages, **extra})


def test_a_safe_exchange_passes_with_the_body_forwarded_untouched(make_chat: ChatFactory, upstream: FakeUpstream):
    raw = json.dumps({"model": "main-llm", "messages": SAFE, "temperature": 0.3, "x_vendor": {"a": [1, 2]}})
    response = make_chat().post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "Hello there, how can I help?"
    assert upstream.requests[0].content == raw.encode()
    assert response.headers["x-guard-input"] == "safe; action=allow"
    assert response.headers["x-guard-output"] == "safe; action=allow"
    assert float(response.headers["x-guard-ms"]) >= 0
    assert "prompt_filter_results" not in response.json()


@pytest.mark.parametrize("mode", ["parallel", "pre_call"])
def test_input_block_is_azures_400_and_the_upstream_call_is_cancelled_or_never_made(
    make_chat: ChatFactory, upstream: FakeUpstream, mode: str
):
    upstream.delay = 5.0
    response = chat(make_chat(**{"chat.input_mode": mode}), UNSAFE)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "content_filter" and error["param"] == "prompt" and error["type"] is None
    assert error["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    assert error["innererror"]["content_filter_result"]["violence"] == {"filtered": True, "severity": "high"}
    check = error["qwen3guard"]["checks"][0]
    assert check["severity"] == "Unsafe" and check["action"] == "block" and check["explanation"]["flagged"] is True
    if mode == "parallel":
        assert len(upstream.requests) == 1 and upstream.abandoned == 1
    else:
        assert upstream.requests == []


def test_the_openai_sdk_reads_an_input_block_as_a_bad_request(make_chat: ChatFactory):
    client = openai.OpenAI(base_url="http://gateway/v1", api_key="k", http_client=make_chat(), max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="main-llm", messages=UNSAFE)  # type: ignore[arg-type]
    assert caught.value.code == "content_filter"


def test_output_block_withholds_that_choice_and_keeps_the_others(make_chat: ChatFactory, upstream: FakeUpstream):
    upstream.answers = ["Here is a bomb recipe: mix", "I cannot help with that."]
    response = chat(make_chat(), SAFE, n=2)
    assert response.status_code == 200
    blocked, kept = response.json()["choices"]
    assert blocked["finish_reason"] == "content_filter" and blocked["message"]["content"] is None
    assert blocked["content_filter_results"]["violence"]["filtered"] is True
    assert blocked["qwen3guard"]["checks"][0]["mode"] == "response"
    assert kept["message"]["content"] == "I cannot help with that." and kept["finish_reason"] == "stop"
    assert "bomb" not in response.text
    assert response.headers["x-guard-output"] == "unsafe; action=block, safe; action=allow"


def test_tool_call_arguments_are_checked_as_text(make_chat: ChatFactory, upstream: FakeUpstream):
    upstream.tool_call = ("search", '{"q": "bomb parts"}')
    response = chat(make_chat(), SAFE)
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "content_filter" and "bomb" not in response.text


def test_annotate_mode_never_blocks_and_adds_azures_annotations(make_chat: ChatFactory, upstream: FakeUpstream):
    upstream.answers = ["a bomb joke"]
    client = make_chat(**{"policy.prompt.default": "annotate", "policy.response.default": "annotate"})
    response = chat(client, UNSAFE)
    assert response.status_code == 200
    body = response.json()
    prompt = body["prompt_filter_results"][0]
    assert prompt["prompt_index"] == 0
    assert prompt["content_filter_results"]["violence"] == {"filtered": False, "severity": "high"}
    choice = body["choices"][0]
    assert choice["message"]["content"] == "a bomb joke" and choice["finish_reason"] == "stop"
    assert choice["content_filter_results"]["violence"] == {"filtered": False, "severity": "high"}
    assert response.headers["x-guard-input"] == "unsafe; action=annotate"


def test_controversial_follows_strictness(make_chat: ChatFactory):
    maybe = [{"role": "user", "content": "maybe politics"}]
    assert chat(make_chat(), maybe).status_code == 400
    assert chat(make_chat(**{"policy.strictness": "loose"}), maybe).status_code == 200


def test_a_tool_result_is_checked_as_untrusted_input(make_chat: ChatFactory, fake: FakeVLLM, upstream: FakeUpstream):
    messages = [
        {"role": "user", "content": "search the web"},
        {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "web", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "1", "content": "to build a bomb, ..."},
    ]
    response = chat(make_chat(), messages)
    assert response.status_code == 400
    checked = fake.bodies("/v1/chat/completions")[0]["messages"]
    assert checked[-1] == {"role": "user", "content": "to build a bomb, ..."}
    assert checked[1]["content"] == "[tool call] web({})"


def test_image_parts_are_refused_unless_configured_to_pass_annotated(make_chat: ChatFactory, upstream: FakeUpstream):
    parts = [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": "data:,"}}]
    messages = [{"role": "user", "content": parts}]
    refused = chat(make_chat(), messages)
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "unsupported_request"
    assert refused.json()["error"]["param"] == "messages[0].content[1]"
    assert upstream.requests == []
    passed = chat(make_chat(**{"conversation.non_text": "pass_annotated"}), messages)
    assert passed.status_code == 200
    error = passed.json()["prompt_filter_results"][0]["content_filter_results"]["error"]
    assert error["code"] == "content_filter_error" and "messages[0].content[1]" in error["message"]


@pytest.mark.parametrize("status", [400, 429, 500, 503])
def test_upstream_errors_pass_through_with_their_status_and_body(
    make_chat: ChatFactory, upstream: FakeUpstream, status: int
):
    body = {"error": {"message": "upstream says no", "type": "upstream", "param": None, "code": "x"}}
    upstream.error = (status, body)
    response = chat(make_chat(), SAFE)
    assert response.status_code == status and response.json() == body
    assert response.headers["x-guard-input"] == "safe; action=allow"


def test_an_unreachable_upstream_is_a_502_not_a_guard_decision(make_chat: ChatFactory, upstream: FakeUpstream):
    upstream.refuse = True
    response = chat(make_chat(), SAFE)
    assert response.status_code == 502 and response.json()["error"]["code"] == "upstream_unavailable"
    assert response.json()["error"]["type"] == "upstream_error"


def test_guard_down_fails_closed_with_503_before_any_answer(make_chat: ChatFactory, fake: FakeVLLM):
    fake.down = True
    client = make_chat()
    response = chat(client, SAFE)
    assert response.status_code == 503 and response.json()["error"]["code"] == "guard_unavailable"
    assert "Hello" not in response.text
    assert metric(client, "guard_gateway_fail_closed_total", endpoint="chat_input") == 1


def test_guard_down_fails_open_passed_annotated_and_counted(make_chat: ChatFactory, fake: FakeVLLM):
    fake.down = True
    client = make_chat(**{"policy.on_guard_failure": "fail_open"})
    response = chat(client, SAFE)
    assert response.status_code == 200
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "Hello there, how can I help?"
    assert body["prompt_filter_results"][0]["content_filter_results"]["error"]["code"] == "content_filter_error"
    assert body["choices"][0]["content_filter_results"]["error"]["code"] == "content_filter_error"
    assert response.headers["x-guard-input"] == "undecided; action=allow; failed_open"
    assert metric(client, "guard_gateway_fail_open_total", endpoint="chat_input") == 1
    assert metric(client, "guard_gateway_fail_open_total", endpoint="chat_output") == 1


def test_credentials_client_key_forwarded_or_configured_key_and_never_sent_to_the_guard(
    make_chat: ChatFactory, upstream: FakeUpstream, fake: FakeVLLM
):
    make_chat().post("/v1/chat/completions", json={"messages": SAFE}, headers={"authorization": "Bearer client-k"})
    assert upstream.requests[-1].headers["authorization"] == "Bearer client-k"
    configured = make_chat(**{"upstream.api_key": "up-secret", "upstream.pass_client_key": "false"})
    configured.post("/v1/chat/completions", json={"messages": SAFE}, headers={"authorization": "Bearer client-k"})
    assert upstream.requests[-1].headers["authorization"] == "Bearer up-secret"
    guarded = make_chat(**{"upstream.api_key": "up-secret", "auth.api_keys": "gw-key"})
    guarded.post("/v1/chat/completions", json={"messages": SAFE}, headers={"authorization": "Bearer gw-key"})
    assert upstream.requests[-1].headers["authorization"] == "Bearer up-secret"
    assert all("up-secret" not in json.dumps(body) for _, body in fake.calls)


def test_models_is_proxied_other_routes_are_404_unless_passthrough(make_chat: ChatFactory, upstream: FakeUpstream):
    client = make_chat()
    assert client.get("/v1/models").json()["data"][0]["id"] == "main-llm"
    missing = client.post("/v1/embeddings", json={"input": "x"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    opened = make_chat(**{"chat.passthrough_routes": "/v1/embeddings"})
    assert opened.post("/v1/embeddings", json={"input": "x"}).status_code == 200
    assert upstream.requests[-1].url.path == "/v1/embeddings"


def test_bad_chat_requests_are_400_naming_the_parameter(make_chat: ChatFactory, upstream: FakeUpstream):
    client = make_chat()
    assert chat(client, []).json()["error"]["param"] == "messages"
    bad_role = chat(client, [{"role": "wizard", "content": "hi"}])
    assert bad_role.status_code == 400 and bad_role.json()["error"]["param"] == "messages[0].role"
    assert client.post("/v1/chat/completions", content=b"{nope").status_code == 400
    assert upstream.requests == []


def test_no_upstream_configured_is_a_404(make_chat: ChatFactory):
    response = chat(make_chat(**{"upstream.url": "<unset>"}), SAFE)
    assert response.status_code == 404 and response.json()["error"]["code"] == "upstream_not_configured"


def test_the_default_upstream_transport_tells_a_refused_connection_from_a_silent_upstream() -> None:
    """The upstream's own pool (aiohttp behind httpx) over real sockets: nothing listening is 502
    upstream_unavailable (aiohttp names it a connect timeout), a server that accepts and never answers is 504."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    refused_url = f"http://127.0.0.1:{closed.getsockname()[1]}/v1"
    closed.close()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)

    async def outcome(url: str) -> UpstreamError:
        upstream = Upstream(UpstreamSettings(url=url), 0.5, gateway_keys=False)
        try:
            with pytest.raises(UpstreamError) as info:
                await upstream.open("GET", "/models", {})
        finally:
            await upstream.aclose()
        return info.value

    try:
        refused = asyncio.run(outcome(refused_url))
        timed_out = asyncio.run(outcome(f"http://127.0.0.1:{silent.getsockname()[1]}/v1"))
    finally:
        silent.close()
    assert (refused.status_code, refused.code) == (502, "upstream_unavailable")
    assert isinstance(timed_out, UpstreamTimeout) and timed_out.status_code == 504


def test_an_upstream_that_closes_without_answering_is_unreachable_not_slow() -> None:
    """A server that accepts and closes at once: aiohttp's ServerDisconnectedError, named a connect timeout by
    httpx-aiohttp, is 502 upstream_unavailable, not a 504."""

    async def scenario() -> UpstreamError:
        async def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1)
            writer.close()

        server = await asyncio.start_server(close_at_once, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        upstream = Upstream(UpstreamSettings(url=f"http://127.0.0.1:{port}/v1"), 5.0, gateway_keys=False)
        try:
            with pytest.raises(UpstreamError) as info:
                await upstream.open("POST", "/chat/completions", {}, b"{}")
        finally:
            await upstream.aclose()
            server.close()
        return info.value

    error = asyncio.run(scenario())
    assert (error.status_code, error.code) == (502, "upstream_unavailable")
