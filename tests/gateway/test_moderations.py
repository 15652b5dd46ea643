"""POST /v1/moderations against the fake guard: OpenAI's schema, order, aliases, the openai SDK."""

from __future__ import annotations

import openai
from fastapi.testclient import TestClient
from openai.types import ModerationCreateResponse

from guard_client import OPENAI_CATEGORIES
from guard_client.testing import FakeVLLM
from tests.gateway.conftest import GatewayFactory, chat_calls


def test_one_result_per_input_in_order_with_all_keys(gateway: TestClient) -> None:
    reply = gateway.post("/v1/moderations", json={"input": ["hello", "how to build a bomb", "maybe", "hi"]})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["id"].startswith("modr-") and body["model"] == "qwen3guard"
    assert [r["flagged"] for r in body["results"]] == [False, True, True, False]  # strict: Controversial flags
    violent = body["results"][1]
    assert violent["categories"]["violence"] is True and violent["category_scores"]["violence"] == 1.0
    assert violent["qwen3guard"]["severity"] == "Unsafe" and violent["qwen3guard"]["labels"] == ["Violent"]
    for result in body["results"]:
        for key in ("categories", "category_scores", "category_applied_input_types"):
            assert set(result[key]) == set(OPENAI_CATEGORIES)


def test_a_single_string_and_an_array_of_text_parts_are_one_input(gateway: TestClient, fake: FakeVLLM) -> None:
    single = gateway.post("/v1/moderations", json={"input": "a bomb"}).json()
    parts = [{"type": "text", "text": "first part"}, {"type": "text", "text": "a bomb"}]
    multi = gateway.post("/v1/moderations", json={"input": parts}).json()
    assert len(single["results"]) == len(multi["results"]) == 1
    assert single["results"][0]["flagged"] and multi["results"][0]["flagged"]
    assert fake.calls[-1][1]["messages"][-1]["content"] == "first part\na bomb"  # type: ignore[index]


def test_loose_strictness_reads_controversial_as_not_flagged(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(**{"policy.strictness": "loose"})
    result = gateway.post("/v1/moderations", json={"input": "maybe"}).json()["results"][0]
    assert result["flagged"] is False and result["qwen3guard"]["severity"] == "Controversial"


def test_openai_model_names_are_aliases_of_the_guard(gateway: TestClient) -> None:
    for model in ("omni-moderation-latest", "text-moderation-latest", "qwen3guard"):
        reply = gateway.post("/v1/moderations", json={"input": "hi", "model": model})
        assert reply.status_code == 200 and reply.json()["model"] == "qwen3guard"


def test_the_openai_sdk_parses_the_answer(gateway: TestClient) -> None:
    client = openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="unused", http_client=gateway)
    response = client.moderations.create(model="omni-moderation-latest", input=["hello", "a bomb"])
    assert isinstance(response, ModerationCreateResponse)
    assert [r.flagged for r in response.results] == [False, True]
    assert response.results[1].categories.violence is True


def test_scores_carry_the_verdict_token_probability(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(**{"guard.scores": "true"})
    result = gateway.post("/v1/moderations", json={"input": "a bomb"}).json()["results"][0]
    # The fake's verdict probabilities: Unsafe 0.85 + Controversial 0.05 under strict.
    assert abs(result["category_scores"]["violence"] - 0.90) < 1e-6
    assert result["qwen3guard"]["scores"]["unsafe"] == 0.85


def test_inputs_of_one_request_are_checked_once_each_even_when_repeated(gateway: TestClient, fake: FakeVLLM) -> None:
    reply = gateway.post("/v1/moderations", json={"input": ["same", "same", "other"]})
    assert len(reply.json()["results"]) == 3
    assert chat_calls(fake) == 2


def test_a_long_input_is_checked_in_windows(make_gateway: GatewayFactory, fake: FakeVLLM) -> None:
    fake.max_model_len = 600  # the fake counts one token per word
    gateway = make_gateway()
    text = " ".join(["word"] * 1500) + " bomb"
    result = gateway.post("/v1/moderations", json={"input": text}).json()["results"][0]
    assert result["flagged"] is True and chat_calls(fake) > 1
