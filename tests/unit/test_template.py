"""The guard prompt: golden renders, and the Python renderer equal to the Jinja template the stand-in ships."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2.sandbox import ImmutableSandboxedEnvironment

from guard_client import GuardInputError, GuardMode, chat_template_jinja, render_guard_prompt
from guard_client._template import HEADS, TAILS, content_text, guard_mode
from tests.conftest import golden_cases

JINJA = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(chat_template_jinja())


def jinja_render(messages: list[dict[str, Any]]) -> str:
    # transformers renders chat templates in a sandbox with these options; vLLM goes through it.
    return JINJA.render(messages=messages, add_generation_prompt=True)


@pytest.mark.parametrize(
    ("name", "messages", "expected"), golden_cases(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_golden_renders_byte_for_byte(name: str, messages: list[dict[str, str]], expected: str) -> None:
    assert render_guard_prompt(messages) == expected
    assert jinja_render(messages) == expected


def test_mode_follows_last_role() -> None:
    assert guard_mode([{"role": "user", "content": "a"}]) is GuardMode.PROMPT
    assert guard_mode([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]) is GuardMode.RESPONSE
    assert guard_mode([{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}]) is GuardMode.RESPONSE


def test_system_then_user_joins_without_prefix() -> None:
    rendered = render_guard_prompt([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
    assert rendered == HEADS[GuardMode.PROMPT] + "USER: S\n\nU" + TAILS[GuardMode.PROMPT]


def test_multi_turn_drops_tool_and_later_system_messages() -> None:
    messages = [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "tool", "content": "tool output"},
        {"role": "system", "content": "late system"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "a2"},
    ]
    conversation = "USER: q1\n\nASSISTANT: a1\n\nq2\n\nASSISTANT: a2"
    assert render_guard_prompt(messages) == HEADS[GuardMode.RESPONSE] + conversation + TAILS[GuardMode.RESPONSE]
    assert jinja_render(messages) == render_guard_prompt(messages)


def test_multi_part_content_is_flattened_with_newlines() -> None:
    parts = [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]
    assert content_text(parts) == "first\nsecond"
    assert content_text([{"type": "text", "text": ""}, *parts, "third"]) == "first\nsecond\nthird"
    assert "USER: first\nsecond\n\n<END" in render_guard_prompt([{"role": "user", "content": parts}])


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        ([], "at least one message"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}], "'image_url' is not text"),
        ([{"role": "user", "content": 42}], "must be a string or a list of text parts"),
        ([{"content": "no role"}], "with a 'role'"),
    ],
)
def test_bad_messages_are_clear_errors(messages: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(GuardInputError, match=message):
        render_guard_prompt(messages)


def test_policy_head_is_shared_by_every_prompt_of_a_mode() -> None:
    # Prefix caching only pays if the head does not depend on the conversation.
    a = render_guard_prompt([{"role": "user", "content": "one"}])
    b = render_guard_prompt([{"role": "system", "content": "sys"}, {"role": "user", "content": "two"}])
    assert a.startswith(HEADS[GuardMode.PROMPT]) and b.startswith(HEADS[GuardMode.PROMPT])
    assert HEADS[GuardMode.PROMPT].endswith("<BEGIN CONVERSATION>\n\n")


roles = st.sampled_from(["system", "user", "assistant", "tool"])
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
conversations = st.lists(st.fixed_dictionaries({"role": roles, "content": texts}), min_size=1, max_size=7)


@settings(max_examples=300, deadline=None)
@given(conversations)
def test_python_renderer_equals_jinja_template(messages: list[dict[str, str]]) -> None:
    assert render_guard_prompt(messages) == jinja_render(messages)
