"""Streamed answers: hold-back windows, blocks that never leak, stream_first / end_only, failures, and a
client that leaves (the upstream request is cancelled)."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import httpx
import openai
import pytest
from fastapi.testclient import TestClient
from openai.types.chat import ChatCompletionChunk

from guard_client.testing import FakeVLLM
from guard_gateway import create_app, load_config
from guard_gateway.testing import FakeUpstream
from tests.gateway.chat_fakes import ChatFactory, sse_events, streamed_text
from tests.gateway.test_chat_proxy import SAFE, UNSAFE

LONG = "Sure , here is a long and friendly answer about cooking pasta with tomatoes and basil today"


def stream(
    client: TestClient,
    messages: list[dict[str, Any]] = SAFE,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> httpx.Response:
    body = {"model": "main-llm", "messages": messages, "stream": True, **extra}
    return client.post("/v1/chat/completions", json=body, headers=headers)


def test_a_safe_stream_is_released_whole_in_order(make_chat: ChatFactory, upstream: FakeUpstream, fake: FakeVLLM):
    upstream.answers = [LONG]
    response = stream(make_chat(**{"chat.window_chars": "20"}))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert streamed_text(events) == LONG
    assert events[-1] == "[DONE]" and events[-2]["choices"][0]["finish_reason"] == "stop"
    output_checks = [b for b in fake.bodies("/v1/chat/completions") if b["messages"][-1]["role"] == "assistant"]
    assert len(output_checks) >= 2  # windows, then the end
    assert output_checks[-1]["messages"][-1]["content"] == LONG  # the end of the stream is always checked
    # every check extends the previous one: the prefix cache reuses it
    texts = [b["messages"][-1]["content"] for b in output_checks]
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(texts))


def test_every_check_of_one_conversation_carries_one_routing_key(
    make_chat: ChatFactory, upstream: FakeUpstream, fake: FakeVLLM
):
    """Behind vllm-router's consistent_hash, the input check, every window of the stream and the next turn of
    the conversation land on one replica (its prefix cache): they carry one X-Session-ID."""
    upstream.answers = [LONG]
    client = make_chat(**{"chat.window_chars": "20"})
    stream(client)
    first_turn = [key for path, key in zip(fake.paths(), fake.sessions, strict=True) if path != "/v1/models"]
    assert len(first_turn) >= 3 and len(set(first_turn)) == 1 and first_turn[0]
    fake.sessions.clear()
    stream(client, [*SAFE, {"role": "assistant", "content": LONG}, {"role": "user", "content": "and then?"}])
    assert set(fake.sessions) - {None} == set(first_turn)  # the next turn too
    fake.sessions.clear()
    stream(client, [{"role": "user", "content": "another conversation"}])
    assert not set(fake.sessions) & set(first_turn)
    fake.sessions.clear()
    stream(client, headers={"X-Session-ID": "app-conversation-7"})
    assert set(fake.sessions) - {None} == {"app-conversation-7"}  # the application's own key wins


@pytest.mark.parametrize("window", ["1", "16", "64", "100000"])
def test_a_block_mid_stream_never_releases_the_withheld_text(
    make_chat: ChatFactory, upstream: FakeUpstream, window: str
):
    upstream.answers = ["Sure , first you take some wire and then the bomb goes here and secret step two follows"]
    response = stream(make_chat(**{"chat.window_chars": window}))
    assert response.status_code == 200
    events = sse_events(response.text)
    assert "bomb" not in response.text and "secret" not in response.text
    assert events[-1] == "[DONE]"
    last = events[-2]["choices"][0]
    assert last["finish_reason"] == "content_filter"
    assert last["content_filter_results"]["violence"]["filtered"] is True
    assert last["qwen3guard"]["checks"][0]["severity"] == "Unsafe"
    assert upstream.abandoned + upstream.finished == 1


def test_the_openai_sdk_sees_a_stream_block_as_finish_reason_content_filter(
    make_chat: ChatFactory, upstream: FakeUpstream
):
    upstream.answers = ["a bomb"]
    client = openai.OpenAI(base_url="http://gateway/v1", api_key="k", http_client=make_chat(), max_retries=0)
    chunks = list(client.chat.completions.create(model="main-llm", messages=SAFE, stream=True))  # type: ignore[call-overload]
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    assert "bomb" not in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_an_input_block_on_a_stream_is_plain_json_400_before_any_event(make_chat: ChatFactory, upstream: FakeUpstream):
    upstream.delay = 5.0
    response = stream(make_chat(), UNSAFE)
    assert response.status_code == 400 and response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == "content_filter"
    assert upstream.abandoned == 1


def test_tool_call_arguments_in_a_stream_are_checked(make_chat: ChatFactory, upstream: FakeUpstream):
    upstream.answers = ["Let me look that up"]
    upstream.tool_call = ("search", '{"q": "how to make a bomb"}')
    response = stream(make_chat())
    events = sse_events(response.text)
    assert events[-2]["choices"][0]["finish_reason"] == "content_filter"
    assert "bomb" not in response.text


def test_stream_first_releases_before_checking_and_still_ends_on_a_block(
    make_chat: ChatFactory, upstream: FakeUpstream
):
    upstream.answers = ["one two three bomb four"]
    response = stream(make_chat(**{"chat.stream_mode": "stream_first"}))
    events = sse_events(response.text)
    assert events[-2]["choices"][0]["finish_reason"] == "content_filter" and events[-1] == "[DONE]"
    assert streamed_text(events).startswith("one")  # released before its check: documented


def test_end_only_checks_once_at_the_end(make_chat: ChatFactory, upstream: FakeUpstream, fake: FakeVLLM):
    upstream.answers = [LONG]
    response = stream(make_chat(**{"chat.stream_mode": "end_only", "chat.window_chars": "1"}))
    assert streamed_text(sse_events(response.text)) == LONG
    outputs = [b for b in fake.bodies("/v1/chat/completions") if b["messages"][-1]["role"] == "assistant"]
    assert len(outputs) == 1


def test_each_choice_of_n_is_checked_in_a_stream(make_chat: ChatFactory, upstream: FakeUpstream):
    upstream.answers = ["fine words here", "a bomb here"]
    events = sse_events(stream(make_chat(), n=2).text)
    finishes = [(c["index"], c.get("finish_reason")) for e in events if isinstance(e, dict) for c in e["choices"]]
    assert (1, "content_filter") in finishes and (1, "stop") not in finishes
    assert "bomb" not in json.dumps(events)


def test_annotate_mode_streams_a_prompt_annotation_chunk_first(make_chat: ChatFactory, upstream: FakeUpstream):
    upstream.answers = ["a bomb joke"]
    client = make_chat(**{"policy.prompt.default": "annotate", "policy.response.default": "annotate"})
    events = sse_events(stream(client, UNSAFE).text)
    assert events[0]["choices"] == [] and events[0]["prompt_filter_results"][0]["prompt_index"] == 0
    ChatCompletionChunk.model_validate(events[0])  # a valid chunk, as Azure's (strict clients validate them)
    assert streamed_text(events) == "a bomb joke"
    annotated = [c for e in events if isinstance(e, dict) for c in e["choices"] if "content_filter_results" in c]
    assert annotated[0]["content_filter_results"]["violence"] == {"filtered": False, "severity": "high"}


def test_upstream_dying_mid_stream_ends_with_an_error_event_and_done(make_chat: ChatFactory, upstream: FakeUpstream):
    upstream.answers = [LONG]
    upstream.die_after = 5
    response = stream(make_chat())
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    assert events[-2]["error"]["code"] == "upstream_disconnected"
    assert events[-2]["error"]["type"] == "upstream_error"


def test_upstream_error_on_a_stream_passes_through(make_chat: ChatFactory, upstream: FakeUpstream):
    upstream.error = (429, {"error": {"message": "slow down", "type": "rate_limit", "param": None, "code": None}})
    response = stream(make_chat())
    assert response.status_code == 429 and response.json()["error"]["message"] == "slow down"


def test_guard_down_on_a_stream_fails_closed_before_anything_is_released(
    make_chat: ChatFactory, upstream: FakeUpstream, fake: FakeVLLM
):
    client = make_chat()
    checks = 0

    def down_after_input(body: dict[str, Any]) -> Exception | None:
        nonlocal checks  # the input check passes, then the guard goes down
        checks += 1
        return httpx.ConnectError("down") if checks > 1 else None

    fake.fail = down_after_input
    response = stream(client)
    assert response.status_code == 503 and response.json()["error"]["code"] == "guard_unavailable"
    assert "Hello" not in response.text
    assert checks > 1  # the input check passed; the guard went down for the output's


def test_guard_down_on_a_stream_fails_open_annotated(make_chat: ChatFactory, upstream: FakeUpstream, fake: FakeVLLM):
    fake.down = True
    events = sse_events(stream(make_chat(**{"policy.on_guard_failure": "fail_open"})).text)
    assert streamed_text(events) == "Hello there, how can I help?"
    assert events[0]["prompt_filter_results"][0]["content_filter_results"]["error"]["code"] == "content_filter_error"


async def _run_until_disconnect(fake: FakeVLLM, llm: FakeUpstream, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Drive the ASGI app directly: the client leaves 0.3 s after sending its request."""
    config = load_config(overrides={"upstream.url": "http://main-llm/v1", "guard.max_retries": "0"}, environ={})
    app = create_app(config, guard_transport=httpx.MockTransport(fake), upstream_transport=httpx.MockTransport(llm))
    sent: list[dict[str, Any]] = []
    request = [{"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}]

    async def receive() -> dict[str, Any]:
        if request:
            return request.pop()
        await asyncio.sleep(0.3)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
        "client": ("test", 1),
        "server": ("gateway", 80),
        "scheme": "http",
        "root_path": "",
    }
    await asyncio.wait_for(app(scope, receive, send), timeout=10)
    return sent


@pytest.mark.parametrize("streamed", [True, False])
def test_a_client_that_leaves_cancels_the_upstream_request(fake: FakeVLLM, streamed: bool):
    llm = FakeUpstream(answers=[LONG], token_interval=0.5 if streamed else 0.0, delay=0.0 if streamed else 5.0)
    body = {"model": "main-llm", "messages": SAFE, "stream": streamed}
    sent = asyncio.run(_run_until_disconnect(fake, llm, body))
    assert llm.abandoned == 1 and llm.finished == 0
    released = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert LONG.encode() not in released


def _overlap_gateway(fake: FakeVLLM, llm: FakeUpstream, **overrides: str) -> tuple[TestClient, list[str]]:
    """A gateway whose guard answers the input check only once an output check has been answered: the
    order the guard saw the checks in, by the checked conversation's last role."""
    order: list[str] = []

    async def guard(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        if "messages" not in body:  # the model list
            return fake(request)
        role = body["messages"][-1]["role"]
        order.append(role)
        if role == "user":
            for _ in range(300):  # at most 3 s
                if "assistant answered" in order:
                    break
                await asyncio.sleep(0.01)
        response = fake(request)
        order.append(f"{role} answered")
        return response

    settings = {"guard.max_retries": "0", "upstream.url": "http://main-llm/v1", "cache.enabled": "false", **overrides}
    app = create_app(
        load_config(overrides=settings, environ={}),
        guard_transport=httpx.MockTransport(guard),
        upstream_transport=httpx.MockTransport(llm),
    )
    client = TestClient(app, raise_server_exceptions=False)
    return client, order


def test_a_parallel_stream_checks_its_first_text_while_the_input_check_runs(fake: FakeVLLM):
    llm = FakeUpstream(answers=[LONG])
    client, order = _overlap_gateway(fake, llm, **{"chat.window_chars": "100000"})
    with client:
        response = stream(client)
    assert response.status_code == 200
    # The first output check was sent and answered while the input check was still waiting for its verdict.
    assert order[:4] == ["user", "assistant", "assistant answered", "user answered"]
    assert streamed_text(sse_events(response.text)) == LONG


def test_an_input_block_after_a_passed_output_check_is_still_a_400_with_nothing_released(fake: FakeVLLM):
    llm = FakeUpstream(answers=[LONG], token_interval=0.01)
    # The conversation is unsafe, the answer's first window is not: the output check passes first.
    fake.reply = lambda body: (
        "Safety: Unsafe\nCategories: Violent"
        if body["messages"][-1]["role"] == "user"
        else "Safety: Safe\nCategories: None\nRefusal: No"
    )
    client, order = _overlap_gateway(fake, llm, **{"chat.window_chars": "100000"})
    with client:
        response = stream(client, UNSAFE)
    assert order[:4] == ["user", "assistant", "assistant answered", "user answered"]
    assert response.status_code == 400 and response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == "content_filter"
    assert "Sure" not in response.text
    assert llm.abandoned == 1 and llm.finished == 0


def test_an_input_block_wins_over_an_output_check_that_failed_first(fake: FakeVLLM):
    llm = FakeUpstream(answers=[LONG])
    fake.reply = lambda body: "Safety: Unsafe\nCategories: Violent"
    fake.fail = lambda body: (
        httpx.Response(500, json={"error": {"message": "engine died"}})
        if body["messages"][-1]["role"] == "assistant"
        else None
    )
    client, _ = _overlap_gateway(fake, llm, **{"chat.window_chars": "100000"})
    with client:
        response = stream(client, UNSAFE)
    assert response.status_code == 400 and response.json()["error"]["code"] == "content_filter"
