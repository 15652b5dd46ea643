"""The gateway request types of the load test: the mix, and how every answer is judged (no locust needed)."""

from __future__ import annotations

import json
import random

import pytest
from openai.types.moderation import Categories

from loadtest.gateway_requests import (
    CHAT,
    CHAT_STREAM,
    DIRECT,
    MODERATION,
    GatewayMix,
    judge_chat,
    judge_chat_stream,
    judge_moderation,
)
from loadtest.summary import FORMAT_FAILURE

# Every category the openai SDK's Moderation model requires, by its wire name.
CATEGORIES = dict.fromkeys((field.alias or name for name, field in Categories.model_fields.items()), False)
RESULT = {
    "flagged": False,
    "categories": CATEGORIES,
    "category_scores": dict.fromkeys(CATEGORIES, 0.0),
    "category_applied_input_types": {k: ["text"] for k in CATEGORIES},
    "qwen3guard": {"severity": "safe", "labels": [], "error": None},
}
MODERATION_OK = {"id": "modr-1", "model": "qwen3guard", "results": [RESULT]}
COMPLETION = {
    "id": "c",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
}
BLOCK = {"error": {"message": "blocked", "type": "invalid_request_error", "param": "prompt", "code": "content_filter"}}


def chunk(content: str | None, finish: str | None = None) -> str:
    delta = {"content": content} if content is not None else {}
    body = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    return "data: " + json.dumps({**body, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def test_the_mix_draws_each_type_in_its_share_and_none_by_default() -> None:
    rng = random.Random(0)
    assert {GatewayMix().draw(rng) for _ in range(200)} == {DIRECT}
    mix = GatewayMix(moderation_share=0.3, chat_share=0.4, chat_stream_share=0.5)
    drawn = [mix.draw(rng) for _ in range(4000)]
    assert abs(drawn.count(MODERATION) / 4000 - 0.3) < 0.03
    assert abs((drawn.count(CHAT) + drawn.count(CHAT_STREAM)) / 4000 - 0.4) < 0.03
    assert abs(drawn.count(CHAT_STREAM) / 4000 - 0.2) < 0.03


@pytest.mark.parametrize("shares", [(0.7, 0.4, 0.5), (-0.1, 0.0, 0.5), (0.0, 0.5, 1.5)])
def test_impossible_shares_are_refused(shares: tuple[float, float, float]) -> None:
    with pytest.raises(ValueError, match="share"):
        GatewayMix(*shares)


def test_moderation_answers() -> None:
    assert judge_moderation(200, json.dumps(MODERATION_OK)).error is None
    assert judge_moderation(503, "{}").error == "HTTP 503"
    for broken, reason in [
        ("not json", "not a ModerationCreateResponse"),
        (json.dumps({**MODERATION_OK, "results": [RESULT, RESULT]}), "2 results for one input"),
        (json.dumps({**MODERATION_OK, "results": [{**RESULT, "qwen3guard": None}]}), "qwen3guard"),
    ]:
        error = judge_moderation(200, broken).error
        assert error is not None and error.startswith(FORMAT_FAILURE) and reason in error
    undecided = {**RESULT, "qwen3guard": {"error": "guard timed out"}}
    assert "undecided" in str(judge_moderation(200, json.dumps({**MODERATION_OK, "results": [undecided]})).error)


def test_chat_answers() -> None:
    assert judge_chat(200, json.dumps(COMPLETION)).error is None
    filtered = {**COMPLETION, "choices": [{**COMPLETION["choices"][0], "finish_reason": "content_filter"}]}
    assert judge_chat(200, json.dumps(filtered)).blocked is True
    input_block = judge_chat(400, json.dumps(BLOCK))
    assert input_block.error is None and input_block.blocked
    assert judge_chat(400, json.dumps({"error": {**BLOCK["error"], "code": "invalid_value"}})).error == "HTTP 400"
    assert judge_chat(500, "{}").error == "HTTP 500"
    assert str(judge_chat(200, "{}").error).startswith(FORMAT_FAILURE)
    assert str(judge_chat(200, json.dumps({**COMPLETION, "choices": []})).error).startswith(FORMAT_FAILURE)


def test_chat_streams() -> None:
    assert judge_chat_stream(200, [chunk("hi"), chunk(None, "stop"), "data: [DONE]"]) == judge_chat_stream(
        200, [chunk("hi"), "data: [DONE]"]
    )
    ok = judge_chat_stream(200, [chunk("hi"), chunk(None, "stop"), "data: [DONE]"])
    assert ok.error is None and not ok.blocked
    blocked = judge_chat_stream(200, [chunk("hi"), chunk(None, "content_filter"), "data: [DONE]"])
    assert blocked.error is None and blocked.blocked
    assert judge_chat_stream(400, [json.dumps(BLOCK)]).blocked
    assert str(judge_chat_stream(200, [chunk("hi")]).error).startswith(FORMAT_FAILURE)  # no [DONE]: cut short
    assert str(judge_chat_stream(200, ["data: {nope", "data: [DONE]"]).error).startswith(FORMAT_FAILURE)
    died = judge_chat_stream(200, [chunk("hi"), 'data: {"error": {"message": "upstream died"}}', "data: [DONE]"])
    assert "upstream died" in str(died.error)
    assert judge_chat_stream(503, ['{"error": {"type": "guard_unavailable"}}']).error == "HTTP 503"
