"""`guard_client.conversation`: the one view of a conversation every surface checks (docs/conversation-view.md)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guard_client import GuardInputError, GuardMode, render_guard_prompt
from guard_client.conversation import (
    ConversationError,
    NonText,
    NonTextPartError,
    answer_view,
    conversation_view,
)

CALL = {"id": "c1", "type": "function", "function": {"name": "fetch_page", "arguments": '{"url": "https://x"}'}}


@pytest.mark.parametrize(
    ("messages", "shown"),
    [
        ([{"role": "user", "content": "Q"}], [{"role": "user", "content": "Q"}]),
        (
            [{"role": "developer", "content": "S"}, {"role": "user", "content": "Q"}],
            [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}],
        ),
        (
            [{"role": "user", "content": "Q"}, {"role": "system", "content": "late"}],
            [{"role": "user", "content": "Q"}, {"role": "user", "content": "late"}],
        ),
        (
            [{"role": "user", "content": "Q"}, {"role": "assistant", "content": None, "tool_calls": [CALL]}],
            [
                {"role": "user", "content": "Q"},
                {"role": "assistant", "content": '[tool call] fetch_page({"url": "https://x"})'},
            ],
        ),
        (
            [{"role": "user", "content": "Q"}, {"role": "tool", "tool_call_id": "c1", "content": "page"}],
            [{"role": "user", "content": "Q"}, {"role": "user", "content": "page"}],
        ),
        (
            [
                {
                    "role": "function",
                    "name": "f",
                    "content": [{"type": "text", "text": "a"}, {"type": "input_text", "text": "b"}],
                }
            ],
            [{"role": "user", "content": "a\nb"}],
        ),
        (
            [{"role": "assistant", "content": "x", "refusal": "no", "function_call": {"name": "f", "arguments": "{}"}}],
            [{"role": "user", "content": ""}, {"role": "assistant", "content": "x\nno\n[tool call] f({})"}],
        ),
    ],
)
def test_each_role_is_shown_as_the_doc_says(messages: list[dict[str, Any]], shown: list[dict[str, str]]) -> None:
    assert [dict(m) for m in conversation_view(messages).messages] == shown


def test_the_mode_and_the_checks_of_a_view() -> None:
    agent = conversation_view([{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}])
    assert agent.mode is GuardMode.RESPONSE
    prefill = conversation_view([{"role": "user", "content": "Q"}, {"role": "tool", "content": "T"}])
    assert prefill.mode is GuardMode.PROMPT and prefill.input_checks() == [prefill.checked()]
    assert agent.input_checks() == [[{"role": "user", "content": "Q"}], agent.checked()]
    lone = conversation_view([{"role": "system", "content": "S"}])
    assert lone.checked() == [{"role": "user", "content": "S"}] and lone.mode is GuardMode.PROMPT


IMAGE = {"type": "image_url", "image_url": {"url": "data:,"}}


def test_non_text_parts_are_refused_or_passed_and_listed() -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "what?"}, IMAGE]}]
    with pytest.raises(
        NonTextPartError, match=r"messages\[0\]\.content\[1\]: a part of type 'image_url' is not text"
    ) as error:
        conversation_view(messages)
    assert error.value.param == "messages[0].content[1]" and isinstance(error.value, GuardInputError)
    passed = conversation_view(messages, NonText.PASS_ANNOTATED)
    assert passed.messages[0]["content"] == "what?" and passed.unread == ("messages[0].content[1]",)
    answer = answer_view({"content": [IMAGE]}, NonText.PASS_ANNOTATED, "choices[0].message")
    assert answer.unread == ("choices[0].message.content[0]",)


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ("not a list", "messages"),
        ([{"content": "no role"}], "messages[0]"),
        ([{"role": "critic", "content": "x"}], "messages[0].role"),
        ([{"role": "user", "content": 42}], "messages[0].content"),
    ],
)
def test_malformed_messages_name_the_part(messages: Any, param: str) -> None:
    with pytest.raises(ConversationError) as error:
        conversation_view(messages)
    assert error.value.param == param and not isinstance(error.value, NonTextPartError)


roles = st.sampled_from(["system", "developer", "user", "assistant", "tool", "function"])
texts = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20).map(lambda t: f"<{t}>")
conversations = st.lists(st.fixed_dictionaries({"role": roles, "content": texts}), min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(conversations)
def test_every_text_of_every_turn_reaches_the_rendered_prompt(messages: list[dict[str, str]]) -> None:
    view = conversation_view(messages)
    prompts = [render_guard_prompt(check) for check in view.input_checks()]
    for message in messages:
        assert any(message["content"] in prompt for prompt in prompts), message


def test_an_answer_without_context_is_still_shown() -> None:
    checked = conversation_view([]).with_answer("A")
    assert checked == [{"role": "user", "content": ""}, {"role": "assistant", "content": "A"}]
    assert "ASSISTANT: A" in render_guard_prompt(checked)
