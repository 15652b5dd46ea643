"""Client behaviour against an in-process fake of vLLM's API: requests, retries, errors, policies.

Every test that takes `make` runs twice: against `GuardClient` and against `AsyncGuardClient`.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import httpx
import pytest

from guard_client import (
    MAX_TOKENS,
    MAX_TOKENS_CONSTRAINED,
    MAX_TOKENS_DETAILS,
    SESSION_HEADER,
    Category,
    FailurePolicy,
    GuardClient,
    GuardConnectionError,
    GuardError,
    GuardHTTPError,
    GuardInputError,
    GuardMode,
    GuardParseError,
    GuardTimeoutError,
    Safety,
    Verdict,
)
from guard_client._constants import DEFAULT_MIN_VERDICT_MASS
from guard_client._flows import combine_worst_first
from guard_client.testing import FakeVLLM
from tests.client.conftest import MakeGuard


def make(fake: FakeVLLM, **kwargs: Any) -> GuardClient:
    return GuardClient("http://guard.test", transport=httpx.MockTransport(fake), **kwargs)


def chat_bodies(fake: FakeVLLM) -> list[dict[str, Any]]:
    return [body for path, body in fake.calls if path == "/v1/chat/completions" and body is not None]


def test_every_request_is_greedy_with_a_small_max_tokens(make: MakeGuard) -> None:
    fake = FakeVLLM()
    with make(fake) as guard:
        guard.check_prompt("hello")
        guard.check_response("q", "a")
    for body in chat_bodies(fake):
        assert body["temperature"] == 0
        assert body["max_tokens"] == MAX_TOKENS
        assert body["model"] == "qwen3guard"
    assert chat_bodies(fake)[1]["messages"] == [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]


def test_response_mode_parses_refusal(make: MakeGuard) -> None:
    fake = FakeVLLM(reply=lambda body: "Safety: Unsafe\nCategories: Violent\nRefusal: No")
    with make(fake) as guard:
        v = guard.check_response("q", "a")
    assert (v.mode, v.safety, v.categories, v.refusal) == (GuardMode.RESPONSE, Safety.UNSAFE, [Category.VIOLENT], False)


def test_constrain_sends_the_verdict_grammar(make: MakeGuard) -> None:
    fake = FakeVLLM()
    with make(fake) as guard:
        guard.check_prompt("x", constrain=True)
        guard.check_response("x", "y", constrain=True)
    prompt_body, response_body = chat_bodies(fake)
    assert prompt_body["structured_outputs"]["regex"].startswith("(Safety: Safe\\nCategories: None|Safety: (Unsafe|")
    assert "Jailbreak" in prompt_body["structured_outputs"]["regex"]
    assert "Jailbreak" not in response_body["structured_outputs"]["regex"]
    assert response_body["structured_outputs"]["regex"].endswith("\\nRefusal: (Yes|No)")


def test_api_key_is_sent_as_bearer(make: MakeGuard, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return FakeVLLM()(request)

    monkeypatch.setenv("GUARD_API_KEY", "from-env")
    with make(handler) as guard:
        guard.check_prompt("x")
    assert set(seen) == {"Bearer from-env"}


def test_500_then_200_is_retried(make: MakeGuard) -> None:
    fake = FakeVLLM(
        script=[
            httpx.Response(200, json={"data": [{"id": "qwen3guard", "root": "r", "max_model_len": 8192}]}),
            httpx.Response(500, json={"error": {"message": "boom"}}),
        ]
    )
    with make(fake, max_retries=2) as guard:
        v = guard.check_prompt("x")
    assert v.safety is Safety.SAFE
    assert fake.paths() == ["/v1/models", "/v1/chat/completions", "/v1/chat/completions"]


def test_retry_after_is_honoured(make: MakeGuard, slept: list[float]) -> None:
    fake = FakeVLLM(
        script=[httpx.Response(429, headers={"Retry-After": "3"}, json={"error": {"message": "slow down"}})]
    )
    with make(fake) as guard:
        assert guard.server_info().model == "qwen3guard"
    assert slept == [3.0]


def test_retries_give_up_with_the_http_error(make: MakeGuard, slept: list[float]) -> None:
    fake = FakeVLLM(script=[httpx.Response(503, json={"error": {"message": "overloaded"}})] * 3)
    with make(fake, max_retries=2) as guard, pytest.raises(GuardHTTPError, match="HTTP 503: overloaded") as info:
        guard.server_info()
    assert info.value.status_code == 503
    assert len(fake.calls) == 3


@pytest.mark.parametrize(("status", "max_retries", "attempts"), [(503, 0, 1), (400, 3, 1), (404, 3, 1), (409, 1, 2)])
def test_only_retryable_statuses_are_retried_and_only_max_retries_times(
    make: MakeGuard, slept: list[float], status: int, max_retries: int, attempts: int
) -> None:
    fake = FakeVLLM(script=[httpx.Response(status, json={"error": {"message": "no"}})] * 4)
    with make(fake, max_retries=max_retries) as guard, pytest.raises(GuardHTTPError) as info:
        guard.server_info()
    assert info.value.status_code == status
    assert len(fake.calls) == attempts
    assert len(slept) == attempts - 1


def test_back_off_grows_from_the_first_retry(make: MakeGuard, slept: list[float]) -> None:
    fake = FakeVLLM(script=[httpx.Response(503, json={"error": {"message": "overloaded"}})] * 4)
    with make(fake, max_retries=3) as guard, pytest.raises(GuardHTTPError):
        guard.server_info()
    assert len(fake.calls) == 4
    # Jittered by ±25% around 0.5 s, 1 s, 2 s: each wait is in its own band.
    assert [round(wait / base, 2) for wait, base in zip(slept, [0.5, 1.0, 2.0], strict=True)] == [
        pytest.approx(1.0, abs=0.25)
    ] * 3


def test_requests_name_the_client(make: MakeGuard) -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("user-agent"))
        return FakeVLLM()(request)

    with make(handler) as guard:
        guard.check_prompt("x")
    assert seen and all(agent and agent.startswith("qwen3guard-client/") for agent in seen)


def test_session_travels_as_a_header_on_every_check_request(make: MakeGuard) -> None:
    """A router in front of several replicas hashes `X-Session-ID` (consistent_hash): every request a check
    makes, chunked windows and verdict-first follow-ups included, carries the conversation's key."""
    seen: list[tuple[str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, request.headers.get(SESSION_HEADER)))
        return fake(request)

    fake = FakeVLLM(max_model_len=1000, reply=lambda body: "Safety: Unsafe\nCategories: Violent")
    with make(handler) as guard:
        guard.check_prompt(" ".join(f"w{i}" for i in range(2000)), chunk=True, session="conv-1")
        guard.check_prompt("x", verdict_only=True, session="conv-2")
        guard.check_prompt("y")
    checks = [(path, key) for path, key in seen if path in ("/v1/chat/completions", "/v1/completions")]
    assert [key for _, key in checks].count("conv-1") > 2  # every window
    assert [key for _, key in checks if key == "conv-2"] == ["conv-2", "conv-2"]  # verdict and details
    assert checks[-1] == ("/v1/chat/completions", None)  # no session, no header


@pytest.mark.parametrize("session", ["", "line\nbreak", "x" * 257])
def test_a_session_that_cannot_be_a_header_is_refused(make: MakeGuard, session: str) -> None:
    fake = FakeVLLM()
    with make(fake) as guard, pytest.raises(GuardInputError, match="session must be"):
        guard.check_prompt("x", session=session)
    assert chat_bodies(fake) == []


def test_client_errors_are_not_retried(make: MakeGuard) -> None:
    fake = FakeVLLM(script=[httpx.Response(401, json={"error": {"message": "bad key"}})])
    with make(fake) as guard, pytest.raises(GuardHTTPError, match="401"):
        guard.server_info()
    assert len(fake.calls) == 1


def test_connection_and_timeout_errors_map_to_the_tree(make: MakeGuard, slept: list[float]) -> None:
    # Six: over a real socket aiohttp itself sends an idempotent request (GET) once more on a dropped
    # connection, as for a stale pooled one; the in-process fakes take three.
    fake = FakeVLLM(script=[httpx.ConnectError("refused")] * 6)
    with make(fake) as guard, pytest.raises(GuardConnectionError, match="cannot reach the guard"):
        guard.server_info()
    fake = FakeVLLM(script=[httpx.ReadTimeout("slow")] * 3)
    with make(fake) as guard, pytest.raises(GuardTimeoutError):
        guard.server_info()
    assert issubclass(GuardTimeoutError, GuardConnectionError)


def test_unknown_model_is_a_clear_error(make: MakeGuard) -> None:
    with make(FakeVLLM(model="other")) as guard, pytest.raises(GuardError, match="'qwen3guard' is not served"):
        guard.check_prompt("x")


def test_unparseable_output_raises_by_default_and_follows_policies(make: MakeGuard) -> None:
    fake = FakeVLLM(reply=lambda body: "I think it is fine")
    with make(fake) as guard, pytest.raises(GuardParseError, match="no 'Safety:' line"):
        guard.check_prompt("x")
    with make(fake, on_error="fail_closed") as guard:
        closed = guard.check_prompt("x")
    with make(fake, on_error=FailurePolicy.FAIL_OPEN) as guard:
        opened = guard.check_prompt("x")
    for v in (closed, opened):
        assert v.safety is None and "no 'Safety:' line" in (v.error or "") and v.raw == "I think it is fine"
    assert closed.flagged() and closed.policy is FailurePolicy.FAIL_CLOSED
    assert not opened.flagged() and opened.policy is FailurePolicy.FAIL_OPEN


def test_input_errors_always_raise_even_when_failing_open(make: MakeGuard) -> None:
    with make(FakeVLLM(), on_error="fail_open") as guard, pytest.raises(GuardInputError):
        guard.check([])


def test_too_long_input_is_refused_before_the_check_is_sent(make: MakeGuard) -> None:
    fake = FakeVLLM(max_model_len=600)
    text = "word " * 700  # 700 tokens in the fake's tokenizer
    with make(fake) as guard, pytest.raises(GuardInputError, match=r"more than the 568 the server accepts.*chunk=True"):
        guard.check_prompt(text)
    assert "/v1/chat/completions" not in fake.paths()


def test_short_inputs_skip_the_token_count(make: MakeGuard) -> None:
    fake = FakeVLLM()
    with make(fake) as guard:
        guard.check_prompt("short")
    assert "/tokenize" not in fake.paths()


def test_chunking_checks_overlapping_windows_and_keeps_the_worst(make: MakeGuard) -> None:
    def reply(body: dict[str, Any]) -> str:
        return (
            "Safety: Unsafe\nCategories: Violent"
            if "BAD" in body["messages"][-1]["content"]
            else "Safety: Safe\nCategories: None"
        )

    fake = FakeVLLM(max_model_len=1000, reply=reply)
    words = [f"w{i}" for i in range(2000)]
    words[1500] = "BAD"
    text = " ".join(words)
    with make(fake) as guard:
        v = guard.check_prompt(text, chunk=True)
    # Windows are checked concurrently: put them back in text order before comparing neighbours.
    windows = sorted((b["messages"][-1]["content"] for b in chat_bodies(fake)), key=text.index)
    assert len(windows) > 2
    assert v.safety is Safety.UNSAFE and v.categories == [Category.VIOLENT]
    # Windows overlap and together cover every word.
    covered = set().union(*(w.split() for w in windows))
    assert covered >= set(words) - {""}
    assert all(a.split()[-1] in b for a, b in itertools.pairwise(windows))


def test_combine_worst_first() -> None:
    safe = Verdict(mode=GuardMode.PROMPT, safety=Safety.SAFE)
    contr = Verdict(mode=GuardMode.PROMPT, safety=Safety.CONTROVERSIAL, categories=[Category.PII])
    unsafe = Verdict(mode=GuardMode.PROMPT, safety=Safety.UNSAFE, categories=[Category.VIOLENT])
    undecided = Verdict.undecided(GuardMode.PROMPT, "x", FailurePolicy.FAIL_OPEN)
    assert combine_worst_first([safe, contr, safe]).categories == [Category.PII]
    assert combine_worst_first([undecided, unsafe]).safety is Safety.UNSAFE
    assert combine_worst_first([safe, undecided]).safety is None
    with pytest.raises(GuardTimeoutError):
        combine_worst_first([safe, GuardTimeoutError("late")])


def test_scores_from_chat_logprobs(make: MakeGuard) -> None:
    import math

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path != "/v1/chat/completions":
            return FakeVLLM()(request)
        steps = [("Safety", 73037), (":", 25), (" Unsafe", 73067), ("\n", 198)]
        content = [
            {
                "token": f"token_id:{tid}",
                "logprob": -0.1,
                "bytes": list(text.encode()),
                "top_logprobs": [
                    {"token": "token_id:22291", "logprob": math.log(0.2)},
                    {"token": "token_id:2093", "logprob": math.log(0.1)},
                ]
                if tid == 73067
                else [],
            }
            for text, tid in steps
        ]
        content[2]["logprob"] = math.log(0.7)
        return httpx.Response(
            200,
            json={
                "choices": [
                    {"message": {"content": "Safety: Unsafe\nCategories: Violent"}, "logprobs": {"content": content}}
                ]
            },
        )

    with make(handler) as guard:
        v = guard.check_prompt("x", scores=True)
    assert v.scores is not None
    assert (v.scores.safe, v.scores.unsafe, v.scores.controversial) == pytest.approx((0.2, 0.7, 0.1))


def test_verdict_first_fetches_details_only_when_flagged(make: MakeGuard) -> None:
    fake = FakeVLLM(verdict_probs={"Safe": 0.9, "Unsafe": 0.06, "Controversial": 0.04})
    with make(fake) as guard:
        v = guard.check_prompt("hello", verdict_only=True)
    assert v.safety is Safety.SAFE and v.scores is not None and v.scores.safe == pytest.approx(0.9)
    completion = next(body for path, body in fake.calls if path == "/v1/completions")
    assert completion is not None
    assert completion["max_tokens"] == 1 and completion["prompt"].endswith("</think>\n\nSafety:")
    assert sorted(completion["allowed_token_ids"]) == sorted([22291, 73067, 2093])
    assert "/v1/chat/completions" not in fake.paths()

    fake = FakeVLLM(reply=lambda body: "Safety: Unsafe\nCategories: Violent")
    with make(fake) as guard:
        v = guard.check_prompt("hello", verdict_only=True)
    assert v.safety is Safety.UNSAFE and v.categories == [Category.VIOLENT]
    assert v.scores is not None and v.scores.unsafe == pytest.approx(0.85)
    verdict_request, follow_up = [body for path, body in fake.calls if path == "/v1/completions"]
    assert verdict_request is not None and follow_up is not None
    # The follow-up continues the same prompt after the decided verdict word: the server reuses
    # the cached prompt and writes only the categories, under a grammar that starts after them.
    assert follow_up["prompt"] == verdict_request["prompt"] + " Unsafe\nCategories:"
    assert follow_up["max_tokens"] == MAX_TOKENS_DETAILS and follow_up["temperature"] == 0
    assert re.fullmatch(follow_up["structured_outputs"]["regex"], " Violent, PII")
    assert not re.fullmatch(follow_up["structured_outputs"]["regex"], " None\nRefusal: No")
    assert "/v1/chat/completions" not in fake.paths()

    fake = FakeVLLM(reply=lambda body: "Safety: Unsafe\nCategories: Violent\nRefusal: Yes")
    with make(fake) as guard:
        r = guard.check_response("q", "a", verdict_only=True)
    assert (r.safety, r.categories, r.refusal) == (Safety.UNSAFE, [Category.VIOLENT], True)
    follow_up = [body for path, body in fake.calls if path == "/v1/completions"][-1]
    assert follow_up is not None and follow_up["structured_outputs"]["regex"].endswith("\\nRefusal: (Yes|No)")


def test_verdict_first_follow_up_that_cannot_be_read_is_an_error_never_safe(make: MakeGuard) -> None:
    fake = FakeVLLM(reply=lambda body: "Safety: Unsafe\nCategories: Violent")

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/completions" and b'"max_tokens": 1,' not in request.content:
            return httpx.Response(200, json={"choices": []})  # the follow-up's answer is lost
        return fake(request)

    with make(handler) as guard, pytest.raises(GuardParseError, match="no choices"):
        guard.check_prompt("hello", verdict_only=True)
    with make(handler, on_error="fail_open") as guard:
        v = guard.check_prompt("hello", verdict_only=True)
    assert v.safety is None and not v.decided and v.error_type == "GuardParseError"


def test_verdict_first_refuses_to_decide_without_verdict_mass(make: MakeGuard) -> None:
    fake = FakeVLLM(verdict_probs={"Safe": 1e-5, "Unsafe": 1e-6, "Controversial": 1e-6})
    with make(fake) as guard, pytest.raises(GuardParseError, match="probability on a verdict word"):
        guard.check_prompt("x", verdict_only=True)
    with make(fake, on_error="fail_closed") as guard:
        assert guard.check_prompt("x", verdict_only=True).flagged()
    with make(fake, min_verdict_mass=0) as guard:
        assert guard.check_prompt("x", verdict_only=True).safety is Safety.SAFE
    assert DEFAULT_MIN_VERDICT_MASS > 0


def test_check_many_keeps_order_and_reports_failures_in_place(make: MakeGuard, slept: list[float]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/chat/completions" and b"FAIL" in request.content:
            return httpx.Response(500, json={"error": {"message": "kaput"}})
        return FakeVLLM(reply=lambda b: "Safety: Unsafe\nCategories: PII" if "pii" in str(b) else "Safety: Safe")(
            request
        )

    items: list[Any] = ["a", "pii please", "FAIL", ("q", "pii answer"), 42, [{"role": "user", "content": "b"}], []]
    with make(handler, max_retries=1) as guard:
        results = guard.check_many(items, concurrency=3)
    # One shape per item: a Verdict, in input order; failures are undecided verdicts naming the error.
    assert all(isinstance(r, Verdict) for r in results) and len(results) == len(items)
    assert [r.safety for r in results] == [Safety.SAFE, Safety.UNSAFE, None, Safety.UNSAFE, None, Safety.SAFE, None]
    assert [r.error_type for r in results] == [
        None,
        None,
        "GuardHTTPError",
        None,
        "GuardInputError",
        None,
        "GuardInputError",
    ]
    assert "kaput" in (results[2].error or "") and results[3].mode is GuardMode.RESPONSE
    # Under the default policy (raise) a failed item is flagged: a batch consumer that only looks
    # at `flagged()` never lets an unchecked item through.
    assert all(r.flagged() and r.policy is None for r in results if not r.decided)


def test_check_many_failures_follow_the_client_policy(make: MakeGuard) -> None:
    fake = FakeVLLM(reply=lambda body: "no verdict here")
    with make(fake, on_error="fail_open") as guard:
        opened = guard.check_many(["x", 7])
    assert opened[0].policy is FailurePolicy.FAIL_OPEN and not opened[0].flagged()
    # Bad input was never checked, so no policy applies to it: it is flagged.
    assert opened[1].policy is None and opened[1].error_type == "GuardInputError" and opened[1].flagged()


def test_unexpected_labels_never_undo_a_clear_verdict(make: MakeGuard) -> None:
    fake = FakeVLLM(reply=lambda body: "Safety: Unsafe\nCategories: Weapons, Jailbreak\nRefusal: Perhaps")
    with make(fake, on_error="fail_open") as guard:
        prompt = guard.check_prompt("x")
        response = guard.check_response("x", "y")
    assert prompt.safety is Safety.UNSAFE and prompt.flagged() and prompt.categories == [Category.JAILBREAK]
    assert prompt.unmapped_labels == ["Weapons"]
    assert response.safety is Safety.UNSAFE and response.flagged() and response.categories == []
    assert response.unmapped_labels == ["Weapons", "Jailbreak"] and response.refusal is None
    assert any("Refusal" in w for w in response.warnings)


def test_verdict_first_honours_the_clients_strictness(make: MakeGuard) -> None:
    fake = FakeVLLM(
        reply=lambda body: "Safety: Controversial\nCategories: PII",
        verdict_probs={"Safe": 0.1, "Unsafe": 0.1, "Controversial": 0.8},
    )
    with make(fake, strictness="loose") as guard:
        loose = guard.check_prompt("x", verdict_only=True)
    assert loose.safety is Safety.CONTROVERSIAL and loose.categories == []
    assert [p for p in fake.paths() if p == "/v1/completions"] == ["/v1/completions"]  # no follow-up
    fake.calls.clear()
    with make(fake) as guard:
        strict = guard.check_prompt("x", verdict_only=True)
    assert strict.categories == [Category.PII]
    assert [p for p in fake.paths() if p == "/v1/completions"] == ["/v1/completions"] * 2


def test_max_categories_narrows_the_grammar(make: MakeGuard) -> None:
    fake = FakeVLLM()
    with make(fake) as guard:
        guard.check_prompt("x", constrain=True, max_categories=1)
        with pytest.raises(GuardInputError, match="max_categories"):
            guard.check_prompt("x", constrain=True, max_categories=4)
    regex = chat_bodies(fake)[0]["structured_outputs"]["regex"]
    assert re.fullmatch(regex, "Safety: Unsafe\nCategories: PII")
    assert not re.fullmatch(regex, "Safety: Unsafe\nCategories: PII, Violent")


def test_verdict_tokens_are_read_from_the_servers_tokenizer(make: MakeGuard) -> None:
    with make(FakeVLLM()) as guard:
        tokens = guard.verdict_tokens()
    assert dict(tokens.ids) == {Safety.SAFE: 22291, Safety.UNSAFE: 73067, Safety.CONTROVERSIAL: 2093}


def test_bad_settings_are_input_errors(make: MakeGuard) -> None:
    with pytest.raises(GuardInputError):
        GuardClient(timeout=0)
    with make(FakeVLLM()) as guard:
        with pytest.raises(GuardInputError, match="concurrency"):
            guard.check_many(["x"], concurrency=0)
        with pytest.raises(GuardInputError, match="verdict_only already constrains"):
            guard.check_prompt("x", verdict_only=True, constrain=True)
        with pytest.raises(GuardInputError, match="unknown check option"):
            guard.check_prompt("x", stream=True)


def test_constrained_max_tokens_covers_the_longest_answer_the_grammar_allows() -> None:
    import re

    from guard_client import verdict_regex

    longest_label = max((c.value for c in Category if c is not Category.JAILBREAK), key=len)
    longest = f"Safety: Controversial\nCategories: {', '.join([longest_label] * 3)}\nRefusal: Yes"
    assert re.fullmatch(verdict_regex(GuardMode.RESPONSE), longest)
    assert not re.fullmatch(
        verdict_regex(GuardMode.RESPONSE), longest.replace("Refusal", f", {longest_label}\nRefusal")
    )
    # Even spelled one character per token, the grammar's longest answer fits.
    assert len(longest) <= MAX_TOKENS_CONSTRAINED


@pytest.mark.parametrize("mode", list(GuardMode))
def test_verdict_grammar_accepts_consistent_verdicts_only(mode: GuardMode) -> None:
    import re

    from guard_client import verdict_regex

    refusal = "\nRefusal: No" if mode is GuardMode.RESPONSE else ""
    grammar = verdict_regex(mode)
    assert re.fullmatch(grammar, "Safety: Safe\nCategories: None" + refusal)
    assert re.fullmatch(grammar, "Safety: Unsafe\nCategories: Violent, PII" + refusal)
    assert re.fullmatch(grammar, "Safety: Controversial\nCategories: None" + refusal)
    assert not re.fullmatch(grammar, "Safety: Safe\nCategories: Violent" + refusal)
    assert not re.fullmatch(grammar, "Safety: Unsafe\nCategories: Violent" + ("" if refusal else "\nRefusal: No"))
    jailbreak = re.fullmatch(grammar, "Safety: Unsafe\nCategories: Jailbreak" + refusal)
    assert (jailbreak is not None) == (mode is GuardMode.PROMPT)
    fixed = verdict_regex(mode, Safety.CONTROVERSIAL)
    assert re.fullmatch(fixed, "Safety: Controversial\nCategories: PII" + refusal)
    assert not re.fullmatch(fixed, "Safety: Unsafe\nCategories: PII" + refusal)
    assert re.fullmatch(verdict_regex(mode, Safety.SAFE), "Safety: Safe\nCategories: None" + refusal)


def test_verdict_first_budgets_for_its_constrained_follow_up(make: MakeGuard) -> None:
    from guard_client import render_guard_prompt

    fake = FakeVLLM(max_model_len=700)  # the fake counts one token per word
    template = len(render_guard_prompt([{"role": "user", "content": ""}]).split())
    text = "word " * (700 - template - 80)  # fits beside 32 answer tokens, not beside 138
    with make(fake) as guard:
        assert guard.check_prompt(text).decided
        with pytest.raises(GuardInputError, match=f"minus {MAX_TOKENS_CONSTRAINED} for the answer"):
            guard.check_prompt(text, verdict_only=True)
    assert "/v1/completions" not in fake.paths()


def test_a_prepared_input_is_checked_as_it_is(make: MakeGuard) -> None:
    from guard_client import prepare_input

    fake = FakeVLLM(reply=lambda body: "Safety: Unsafe\nCategories: Violent\nRefusal: No")
    prepared = prepare_input(
        [{"role": "user", "content": [{"type": "text", "text": "q"}]}, {"role": "assistant", "content": "a"}]
    )
    with make(fake) as guard:
        one = guard.check(prepared)
        many = guard.check_many([prepared, "plain"])
    assert one.mode is GuardMode.RESPONSE and one.safety is Safety.UNSAFE
    assert [v.mode for v in many] == [GuardMode.RESPONSE, GuardMode.PROMPT]
    # The same body as for the raw messages: the prepared (flattened) messages, not re-derived ones.
    assert chat_bodies(fake)[0]["messages"] == [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]


def test_an_adapter_takes_its_base_models_context_limit(make: MakeGuard) -> None:
    # vLLM lists a LoRA adapter with `parent` and no max_model_len; without the base's limit the client
    # would send an over-long input to the server instead of chunking it.
    fake = FakeVLLM(adapters=("acme",), max_model_len=4096)
    with make(fake, model="acme") as guard:
        info = guard.server_info()
    assert (info.model, info.root, info.max_model_len) == ("acme", "/adapters/acme", 4096)
