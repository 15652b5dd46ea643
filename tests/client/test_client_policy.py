"""Choosing a policy on the client and the CLI: every check path states it, sends the client's render (never
the server's chat template, which states the model's own policy) and reads labels against it."""

from __future__ import annotations

import io
import json
import re
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

import guard_client.__main__ as cli
from guard_client import (
    DEFAULT_POLICY,
    MAX_TOKENS,
    POLICY_FILE,
    GuardClient,
    GuardInputError,
    GuardMode,
    GuardPolicy,
    PolicyCategory,
    Safety,
    continuation_regex,
    details_regex,
    max_tokens_constrained,
    max_tokens_details,
    prepare_input,
    render_guard_prompt,
)
from tests.client.conftest import MakeGuard
from tests.fake_vllm import FakeVLLM

ACME = GuardPolicy(
    name="acme",
    categories=(
        PolicyCategory(name="Competitor Mention", definition="Names or praises a competitor's product."),
        PolicyCategory(name="Investment Advice", modes=(GuardMode.PROMPT,), openai=("illicit",)),
    ),
)
MARKER = "BrandX"


def acme_reply(body: dict[str, Any]) -> str:
    """The answer the fake guard gives: Competitor Mention when the checked text names the marker."""
    if MARKER in body.get("prompt", "").rsplit("<BEGIN CONVERSATION>", 1)[-1]:
        return "Safety: Unsafe\nCategories: Competitor Mention"
    return "Safety: Safe\nCategories: None"


def completions(fake: FakeVLLM) -> list[dict[str, Any]]:
    return fake.bodies("/v1/completions")


def test_a_custom_policy_sends_the_clients_render_to_completions(make: MakeGuard) -> None:
    fake = FakeVLLM(reply=acme_reply, model="acme")
    with make(fake, model="acme", policy=ACME) as guard:
        verdict = guard.check_prompt(f"Is {MARKER} better?")
        safe = guard.check_response("Which phone?", "Any will do.")
    assert "/v1/chat/completions" not in fake.paths()
    first, second = completions(fake)
    assert first["prompt"] == render_guard_prompt([{"role": "user", "content": f"Is {MARKER} better?"}], ACME) + (
        "Safety:"
    )
    assert "Competitor Mention. Names or praises a competitor's product.\nInvestment Advice.\n" in first["prompt"]
    assert (first["model"], first["temperature"], "structured_outputs" in first) == ("acme", 0, False)
    assert first["max_tokens"] == max(MAX_TOKENS, max_tokens_constrained(ACME))
    assert (verdict.safety, verdict.categories, verdict.raw) == (
        Safety.UNSAFE,
        ["Competitor Mention"],
        "Safety: Unsafe\nCategories: Competitor Mention",
    )
    assert "Investment Advice" not in second["prompt"]  # prompt-only: not in response moderation
    assert (safe.safety, safe.categories, safe.mode) == (Safety.SAFE, [], GuardMode.RESPONSE)


def test_constrained_custom_checks_send_the_policys_grammar_and_scores_read_the_verdict_token(
    make: MakeGuard,
) -> None:
    fake = FakeVLLM(reply=acme_reply)
    with make(fake, policy=ACME) as guard:
        verdict = guard.check_prompt(f"{MARKER} rocks", constrain=True, scores=True, max_categories=2)
    (body,) = completions(fake)
    regex = body["structured_outputs"]["regex"]
    assert regex == continuation_regex(GuardMode.PROMPT, max_categories=2, policy=ACME)
    assert re.fullmatch(regex, " Unsafe\nCategories: Investment Advice, Competitor Mention")
    assert not re.fullmatch(regex, " Unsafe\nCategories: Violent")
    assert body["max_tokens"] == max_tokens_constrained(ACME) and body["logprobs"] == 20
    assert verdict.categories == ["Competitor Mention"]
    assert verdict.scores is not None and verdict.scores.unsafe == pytest.approx(0.85)


def test_verdict_only_states_the_policy_and_constrains_the_details_to_it(make: MakeGuard) -> None:
    fake = FakeVLLM(reply=acme_reply)
    with make(fake, policy=ACME) as guard:
        verdict = guard.check_prompt(f"{MARKER} rocks", verdict_only=True)
    first, follow_up = completions(fake)
    rendered = render_guard_prompt([{"role": "user", "content": f"{MARKER} rocks"}], ACME)
    assert first["prompt"] == rendered + "Safety:" and first["max_tokens"] == 1
    assert follow_up["prompt"] == rendered + "Safety: Unsafe\nCategories:"
    assert follow_up["structured_outputs"]["regex"] == details_regex(GuardMode.PROMPT, Safety.UNSAFE, policy=ACME)
    assert follow_up["max_tokens"] == max_tokens_details(ACME)
    assert verdict.categories == ["Competitor Mention"]


def test_a_label_outside_the_policy_is_unmapped_and_the_safety_line_decides(make: MakeGuard) -> None:
    fake = FakeVLLM(reply=lambda body: "Safety: Unsafe\nCategories: Violent")
    with make(fake, policy=ACME) as guard:
        verdict = guard.check_prompt("anything")
    assert (verdict.safety, verdict.categories, verdict.unmapped_labels) == (Safety.UNSAFE, [], ["Violent"])
    assert verdict.flagged()


def test_a_per_call_policy_overrides_the_clients_and_a_prepared_input_keeps_its_own(make: MakeGuard) -> None:
    fake = FakeVLLM(reply=acme_reply)
    with make(fake) as guard:
        custom = guard.check_prompt(f"{MARKER}!", policy=ACME)
        default = guard.check_prompt(f"{MARKER}!")
        prepared = guard.check(prepare_input([{"role": "user", "content": f"{MARKER}!"}], ACME))
        batch = guard.check_many([f"{MARKER} one", "two"], policy=ACME)
        with pytest.raises(GuardInputError, match="prepared with policy 'qwen3guard', not 'acme'"):
            guard.check(prepare_input([{"role": "user", "content": "x"}]), policy=ACME)
        with pytest.raises(GuardInputError, match="policy must be a GuardPolicy"):
            guard.check_prompt("x", policy="guard_policy.yaml")
    assert custom.categories == prepared.categories == ["Competitor Mention"]
    assert default.safety is Safety.SAFE  # the published policy: the server's template, the chat endpoint
    assert fake.paths().count("/v1/chat/completions") == 1
    assert [v.categories for v in batch] == [["Competitor Mention"], []]


def test_locate_and_chunking_check_their_windows_with_the_policy(make: MakeGuard) -> None:
    fake = FakeVLLM(reply=acme_reply, max_model_len=700)
    paragraphs = [" ".join(f"w{i}x{j}" for j in range(40)) + "." for i in range(12)]
    paragraphs[7] = f"Plain {MARKER} words."
    text = "\n\n".join(paragraphs)
    with make(fake, policy=ACME) as guard:
        verdict = guard.check_prompt(text, chunk=True, locate=True)
    assert verdict.categories == ["Competitor Mention"] and verdict.location is not None
    assert [s.excerpt for s in verdict.location.spans] == [f"Plain {MARKER} words."]
    bodies = completions(fake)
    assert len(bodies) > 2 and "/v1/chat/completions" not in fake.paths()
    assert all("Competitor Mention. Names or praises" in body["prompt"] for body in bodies)


def test_a_policy_without_a_category_for_the_mode_is_refused_before_sending(make: MakeGuard) -> None:
    prompt_only = GuardPolicy(name="p", categories=(PolicyCategory(name="Spam", modes=(GuardMode.PROMPT,)),))
    fake = FakeVLLM()
    with make(fake, policy=prompt_only) as guard:
        with pytest.raises(GuardInputError, match="no category for response moderation"):
            guard.check_response("q", "a")
        (failed,) = guard.check_many([("q", "a")])
    assert failed.error_type == "GuardInputError" and failed.flagged()
    assert "/v1/completions" not in fake.paths()


def test_the_client_refuses_a_policy_that_is_not_one() -> None:
    with pytest.raises(GuardInputError, match="policy must be a GuardPolicy"):
        GuardClient("http://guard.test", policy="guard_policy.yaml")  # type: ignore[arg-type]
    assert GuardClient("http://guard.test").policy is DEFAULT_POLICY


# -- the CLI -----------------------------------------------------------------------------------


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeVLLM:
    server = FakeVLLM(reply=acme_reply, model="acme")
    monkeypatch.setattr(cli, "GuardClient", partial(GuardClient, transport=httpx.MockTransport(server)))
    return server


def guard(*argv: str, stdin: str = "", monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    if monkeypatch is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = cli.main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def test_guard_check_with_model_and_policy(fake: FakeVLLM, tmp_path: Path) -> None:
    ACME.save(tmp_path)
    code, out, err = guard("check", "--url", "http://g", "--model", "acme", "--policy", str(tmp_path), f"{MARKER}?")
    assert (code, err) == (0, "")
    assert json.loads(out)["categories"] == ["Competitor Mention"]
    code, out, _ = guard(
        "check", "--url", "http://g", "--model", "acme", "--policy", str(tmp_path), "--explain", MARKER
    )
    assert code == 0
    assert "Category Competitor Mention, as policy 'acme' defines it: \"Names or praises" in out
    assert all(body["model"] == "acme" for body in completions(fake))


def test_guard_check_with_a_bad_policy_file_is_exit_2_and_one_line(fake: FakeVLLM, tmp_path: Path) -> None:
    bad = tmp_path / POLICY_FILE
    bad.write_text("name: acme\ncategories:\n  - name: A\n    modes: [chat]\n")
    code, out, err = guard("check", "--url", "http://g", "--policy", str(bad), "hello")
    assert (code, out) == (2, "")
    assert err == f"error: {bad}: categories[0].modes[0]: Input should be 'prompt' or 'response'\n"
    assert fake.calls == []  # nothing was sent
    code, _, err = guard("check", "--url", "http://g", "--policy", str(tmp_path / "missing.yaml"), "hello")
    assert code == 2 and err.count("\n") == 1 and "missing.yaml: cannot read the policy file" in err


def test_guard_parse_reads_labels_against_the_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = ACME.save(tmp_path)
    answer = "Safety: Unsafe\nCategories: investment advice, Violent"
    code, out, _ = guard("parse", "--policy", str(path), stdin=answer, monkeypatch=monkeypatch)
    parsed = json.loads(out)
    assert code == 0 and (parsed["categories"], parsed["unmapped_labels"]) == (["Investment Advice"], ["Violent"])
