"""check(locate=True) in both clients: the span a fake guard flags, in prompt and response mode and chunked."""

from __future__ import annotations

from typing import Any

from guard_client import GuardMode, Safety, explain
from guard_client.testing import FakeVLLM
from tests.client.conftest import MakeGuard

MARKER = "ZQX-forbidden"


def flag_marker(body: dict[str, Any]) -> str:
    last = body["messages"][-1]["content"]
    if MARKER in last:
        return "Safety: Unsafe\nCategories: Violent" + (
            "\nRefusal: No" if body["messages"][-1]["role"] != "user" else ""
        )
    return "Safety: Safe\nCategories: None" + ("\nRefusal: No" if body["messages"][-1]["role"] != "user" else "")


def text_with_marker(paragraphs: int, at: int) -> tuple[str, str]:
    paras = [f"Paragraph {i} opens calmly. It goes on for a while." for i in range(paragraphs)]
    sentence = f"Then {MARKER} appears."
    paras[at] = paras[at].replace("It goes on", sentence + " It goes on")
    return "\n\n".join(paras), sentence


def test_prompt_mode_locates_the_marker_sentence(make: MakeGuard) -> None:
    fake = FakeVLLM(reply=flag_marker)
    text, sentence = text_with_marker(12, 7)
    with make(fake) as guard:
        verdict = guard.check_prompt(text, locate=True)
    assert verdict.safety is Safety.UNSAFE and verdict.location is not None
    start = text.index(sentence)
    assert [(s.start, s.end, s.excerpt) for s in verdict.location.spans] == [(start, start + len(sentence), sentence)]
    chats = [p for p in fake.paths() if p == "/v1/chat/completions"]
    assert len(chats) == 1 + verdict.location.checks <= 1 + verdict.location.max_checks
    assert f'Where: characters {start}-{start + len(sentence)}: "{sentence}"' in explain(verdict).text()


def test_response_mode_keeps_the_prompt_as_context(make: MakeGuard) -> None:
    fake = FakeVLLM(reply=flag_marker)
    text, sentence = text_with_marker(5, 2)
    with make(fake) as guard:
        verdict = guard.check_response("the user's question", text, locate=True)
    assert verdict.mode is GuardMode.RESPONSE and verdict.location is not None
    assert [s.excerpt for s in verdict.location.spans] == [sentence]
    window_bodies = [b for p, b in fake.calls if p == "/v1/chat/completions"][1:]
    assert window_bodies and all(
        b["messages"][0] == {"role": "user", "content": "the user's question"} for b in window_bodies
    )


def test_safe_verdicts_and_locate_off_make_no_extra_checks(make: MakeGuard) -> None:
    fake = FakeVLLM(reply=flag_marker)
    text, _ = text_with_marker(6, 3)
    with make(fake) as guard:
        assert guard.check_prompt("Nothing here.\n\nAt all.", locate=True).location is None
        assert guard.check_prompt(text).location is None
    assert fake.paths().count("/v1/chat/completions") == 2


def test_chunked_long_inputs_are_located(make: MakeGuard) -> None:
    fake = FakeVLLM(reply=flag_marker, max_model_len=600)
    paras = [" ".join(f"w{i}x{j}" for j in range(40)) + "." for i in range(30)]  # 1200 words: too long at once
    paras[21] = f"Plain {MARKER} words."
    text = "\n\n".join(paras)
    with make(fake) as guard:
        verdict = guard.check_prompt(text, chunk=True, locate=True)
    assert verdict.location is not None
    assert [s.excerpt for s in verdict.location.spans] == [f"Plain {MARKER} words."]
    assert verdict.location.complete
