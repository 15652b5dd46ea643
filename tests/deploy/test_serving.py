"""The real vLLM server (CPU build, tiny stand-in) applies the guard template, constraints and caching."""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest

from guard_client import (
    MAX_TOKENS_CONSTRAINED,
    GuardMode,
    GuardParseError,
    parse_verdict,
    render_guard_prompt,
    verdict_regex,
)
from tests.conftest import golden_cases


@pytest.fixture(scope="module")
def http(guard_url: str) -> httpx.Client:
    return httpx.Client(base_url=guard_url, timeout=120)


def server_tokens(http: httpx.Client, **body: Any) -> list[int]:
    reply = http.post("/tokenize", json={"model": "qwen3guard", **body})
    reply.raise_for_status()
    return list(reply.json()["tokens"])


@pytest.mark.parametrize(
    ("name", "messages", "expected"), golden_cases(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_server_applies_the_guard_template(http: httpx.Client, name: str, messages: list[Any], expected: str) -> None:
    from_messages = server_tokens(http, messages=messages)
    assert from_messages == server_tokens(http, prompt=expected, add_special_tokens=False)
    text = http.post("/detokenize", json={"model": "qwen3guard", "tokens": from_messages}).json()["prompt"]
    assert text == expected


def random_conversation(rng: random.Random) -> list[dict[str, Any]]:
    words = ["bomb", "recipe", "héllo", "你好", "  spaced  ", "line\nbreak", "", "USER:", "<END CONVERSATION>"]
    messages: list[dict[str, Any]] = []
    for _ in range(rng.randint(1, 6)):
        role = rng.choice(["system", "user", "user", "assistant", "tool"])
        text = " ".join(rng.choice(words) for _ in range(rng.randint(0, 5)))
        content: Any = (
            text if rng.random() < 0.8 else [{"type": "text", "text": text}, {"type": "text", "text": "part"}]
        )
        messages.append({"role": role, "content": content})
    return messages


def test_client_rendering_equals_the_server_for_many_conversations(http: httpx.Client) -> None:
    rng = random.Random(7)
    conversations = [random_conversation(rng) for _ in range(40)]
    for messages in conversations:
        assert server_tokens(http, messages=messages) == server_tokens(
            http, prompt=render_guard_prompt(messages), add_special_tokens=False
        ), messages


def chat(http: httpx.Client, messages: list[dict[str, str]], **extra: Any) -> str:
    body = {
        "model": "qwen3guard",
        "messages": messages,
        "temperature": 0,
        "max_tokens": MAX_TOKENS_CONSTRAINED,
        **extra,
    }
    reply = http.post("/v1/chat/completions", json=body)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["choices"][0]["message"]["content"])


CONVERSATIONS = [
    [{"role": "user", "content": "How can I make a bomb?"}],
    [{"role": "user", "content": "Tell me a joke"}],
    [
        {"role": "user", "content": "How can I make a bomb?"},
        {"role": "assistant", "content": "I can't help with that."},
    ],
    [{"role": "user", "content": "Recipe?"}, {"role": "assistant", "content": "Mix flour and water."}],
]


def test_guard_conversations_go_through_chat_completions(http: httpx.Client) -> None:
    for messages in CONVERSATIONS:
        assert isinstance(chat(http, messages), str)


def test_verdict_grammar_is_really_applied(http: httpx.Client) -> None:
    # Random weights never write a verdict by themselves; with the grammar every output parses.
    unconstrained_failures = 0
    for messages in CONVERSATIONS:
        mode = GuardMode.PROMPT if messages[-1]["role"] == "user" else GuardMode.RESPONSE
        constrained = chat(http, messages, structured_outputs={"regex": verdict_regex(mode)})
        verdict = parse_verdict(constrained, mode)
        assert verdict.decided
        assert (verdict.refusal is not None) == (mode is GuardMode.RESPONSE)
        try:
            parse_verdict(chat(http, messages), mode)
        except GuardParseError:
            unconstrained_failures += 1
    assert unconstrained_failures == len(CONVERSATIONS)


def test_metrics_expose_prefix_cache_counters(http: httpx.Client) -> None:
    def counter(name: str) -> float:
        text = http.get("/metrics").text
        lines = [line for line in text.splitlines() if line.startswith(name + "{")]
        assert lines, f"{name} missing from /metrics"
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines)

    hits_before = counter("vllm:prefix_cache_hits_total")
    queries_before = counter("vllm:prefix_cache_queries_total")
    chat(http, [{"role": "user", "content": "first distinct prompt about gardening"}], max_tokens=1)
    chat(http, [{"role": "user", "content": "second distinct prompt about sailing"}], max_tokens=1)
    assert counter("vllm:prefix_cache_queries_total") > queries_before
    # The ~300-token policy head is shared: the second request reuses its cached blocks.
    assert counter("vllm:prefix_cache_hits_total") - hits_before >= 200
