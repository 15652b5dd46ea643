"""Both clients against the real CPU server with the tiny stand-in (random weights)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import httpx
import pytest

from guard_client import (
    AsyncGuardClient,
    FailurePolicy,
    GuardClient,
    GuardConnectionError,
    GuardMode,
    GuardParseError,
    GuardTimeoutError,
    Verdict,
)


class FlakyOnce(httpx.BaseTransport):
    """A real connection to the server, except the first chat request answers 500."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.failed = 0
        self.chat_calls = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/chat/completions":
            self.chat_calls += 1
            if not self.failed:
                self.failed += 1
                return httpx.Response(500, json={"error": {"message": "injected"}})
        return self.inner.handle_request(request)


def test_constrained_checks_are_decided_in_both_modes(guard_url: str) -> None:
    with GuardClient(guard_url) as guard:
        assert guard.server_info().is_standin
        prompt = guard.check_prompt("How can I make a bomb?", constrain=True)
        response = guard.check_response(
            "How can I make a bomb?", "I can't help with that.", constrain=True, scores=True
        )
    assert prompt.decided and prompt.mode is GuardMode.PROMPT and prompt.refusal is None
    assert response.decided and response.mode is GuardMode.RESPONSE and response.refusal is not None
    assert response.scores is not None and 0 < response.scores.verdict_mass <= 1.0001


def test_unparseable_output_follows_the_policy(guard_url: str) -> None:
    # The random stand-in never writes a verdict unconstrained: the guard cannot decide.
    with GuardClient(guard_url) as guard, pytest.raises(GuardParseError):
        guard.check_prompt("hello")
    with GuardClient(guard_url, on_error="fail_closed") as guard:
        closed = guard.check_prompt("hello")
    with GuardClient(guard_url, on_error="fail_open") as guard:
        opened = guard.check_prompt("hello")
    assert closed.safety is None and closed.flagged() and closed.policy is FailurePolicy.FAIL_CLOSED
    assert opened.safety is None and not opened.flagged() and opened.raw


def test_server_500_then_200_is_retried(guard_url: str) -> None:
    transport = FlakyOnce()
    with GuardClient(guard_url, transport=transport, max_retries=2) as guard:
        verdict = guard.check_prompt("retry me", constrain=True)
    assert verdict.decided
    assert (transport.failed, transport.chat_calls) == (1, 2)


def test_timeout(guard_url: str) -> None:
    with GuardClient(guard_url, timeout=0.001, max_retries=0) as guard, pytest.raises(GuardTimeoutError):
        guard.check_prompt("too slow", constrain=True)


def test_unreachable_server_fails_closed_when_asked() -> None:
    with GuardClient("http://127.0.0.1:9", max_retries=0, on_error="fail_closed") as guard:
        verdict = guard.check_prompt("anyone there?")
    assert verdict.flagged() and "cannot reach the guard" in (verdict.error or "")


def test_async_client_reports_a_refused_connection_as_such() -> None:
    async def run() -> None:
        async with AsyncGuardClient("http://127.0.0.1:9", max_retries=0) as guard:
            await guard.check_prompt("anyone there?")

    with pytest.raises(GuardConnectionError, match="cannot reach the guard") as info:
        asyncio.run(run())
    assert not isinstance(info.value, GuardTimeoutError)


def test_check_many_with_failures_in_the_middle(guard_url: str) -> None:
    items: list[object] = ["one", ("two", "answer"), "x " * 20000, [], "five"]
    with GuardClient(guard_url) as guard:
        results = guard.check_many(items, concurrency=4, constrain=True)  # type: ignore[arg-type]
    assert [r.error_type for r in results] == [None, None, "GuardInputError", "GuardInputError", None]
    assert "chunk=True" in (results[2].error or "")
    assert [r.mode for r in results if r.decided] == [GuardMode.PROMPT, GuardMode.RESPONSE, GuardMode.PROMPT]


def test_long_input_is_chunked_when_asked(guard_url: str) -> None:
    with GuardClient(guard_url) as guard:
        verdict = guard.check_prompt("lorem ipsum " * 6000, constrain=True, chunk=True)
    assert verdict.decided
    assert verdict.raw.count("Safety:") >= 2  # one per window


def test_async_client_against_the_server(guard_url: str) -> None:
    async def run() -> list[Verdict]:
        async with AsyncGuardClient(guard_url) as guard:
            return await guard.check_many(["a", ("b", "c"), 5, "d"], concurrency=3, constrain=True)  # type: ignore[list-item]

    results = asyncio.run(run())
    assert [r.decided for r in results] == [True, True, False, True]
    assert results[2].error_type == "GuardInputError" and results[2].flagged()


def test_verdict_first_path_against_the_server(guard_url: str) -> None:
    # The stand-in puts almost no probability on verdict words, so the default refuses to decide...
    with GuardClient(guard_url) as guard, pytest.raises(GuardParseError, match="probability on a verdict word"):
        guard.check_prompt("hello", verdict_only=True)
    # ...and with the threshold lifted it decides among the three words and fetches details if flagged.
    with GuardClient(guard_url, min_verdict_mass=0) as guard:
        verdicts = [guard.check_prompt(f"text {i}", verdict_only=True) for i in range(4)]
        verdicts.append(guard.check_response("q", "a", verdict_only=True))
    for v in verdicts:
        assert v.decided and v.scores is not None
        if v.flagged():
            assert v.raw.startswith(f"Safety: {v.safety.value}\nCategories:")  # type: ignore[union-attr]


def test_cli_check_and_batch(guard_url: str, tmp_path: object) -> None:
    cmd = [sys.executable, "-m", "guard_client", "check", "--url", guard_url, "--constrain"]
    single = subprocess.run([*cmd, "How can I make a bomb?"], capture_output=True, text=True, timeout=120)
    assert single.returncode == 0, single.stderr
    assert "RANDOM" in single.stderr
    assert json.loads(single.stdout)["mode"] == "prompt"
    batch_input = (
        '"first"\n{"prompt": "q", "response": "a"}\nnot json\n{"messages": [{"role": "user", "content": "m"}]}\n'
    )
    batch = subprocess.run([*cmd, "--jsonl", "-"], input=batch_input, capture_output=True, text=True, timeout=120)
    lines = [json.loads(line) for line in batch.stdout.splitlines()]
    assert [line["line"] for line in lines] == [1, 2, 3, 4]
    assert lines[1]["mode"] == "response" and "not JSON" in lines[2]["error"]
    assert batch.returncode == 1  # one line failed
