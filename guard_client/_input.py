"""The input side of a check, decided once: validate and flatten the messages, pick the mode, render.

Every check starts with `prepare_input`; nothing downstream validates, re-derives the mode or
re-renders. A bad input raises `GuardInputError` here, before anything is sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from guard_client._errors import GuardInputError
from guard_client._labels import GuardMode
from guard_client._template import mode_of, render_conversation
from guard_client.conversation import content_text

Messages: TypeAlias = Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class GuardInput:
    """One checkable input: the normalized messages (text content), the mode they select and the
    exact guard prompt the model's chat template renders for them."""

    messages: tuple[Mapping[str, str], ...]
    mode: GuardMode
    prompt: str

    def message_list(self) -> list[dict[str, str]]:
        """The messages as a JSON-ready list (a request body's `messages`)."""
        return [dict(message) for message in self.messages]


#: What `check_many` accepts per item: a prompt, a (prompt, response) pair, messages, or an input already
#: prepared with `prepare_input` (checked as it is: nothing is validated or rendered twice).
CheckItem: TypeAlias = str | tuple[str, str] | Messages | GuardInput


def prepare_input(messages: Messages) -> GuardInput:
    """Validate `messages`, flatten their content to text (`conversation.content_text`), pick the mode and
    render the guard prompt exactly as the model's template does: roles it does not show (tool results, a
    later system turn) are not shown. A conversation from an agent goes through
    `conversation.conversation_view` first, which shows them."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise GuardInputError("messages must be a list of {'role': ..., 'content': ...} mappings")
    if not messages:
        raise GuardInputError("a guard check needs at least one message")
    normalized = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise GuardInputError(f"message {index} must be a mapping with a string 'role' and a 'content'")
        normalized.append(
            {"role": message["role"], "content": content_text(message.get("content"), f"messages[{index}].content")}
        )
    mode = mode_of(normalized)
    return GuardInput(tuple(normalized), mode, render_conversation(mode, normalized))


def render_guard_prompt(messages: Messages) -> str:
    """Render the guard prompt for `messages` byte for byte as Qwen3Guard-Gen's chat template does."""
    return prepare_input(messages).prompt


def item_messages(item: CheckItem) -> Messages | GuardInput:
    """Turn a `check_many` item into messages (a prompt, a (prompt, response) pair, messages as given), or
    pass a prepared `GuardInput` through."""
    if isinstance(item, GuardInput):
        return item
    if isinstance(item, str):
        return [{"role": "user", "content": item}]
    if isinstance(item, tuple) and len(item) == 2 and all(isinstance(part, str) for part in item):
        return [{"role": "user", "content": item[0]}, {"role": "assistant", "content": item[1]}]
    if isinstance(item, Sequence) and not isinstance(item, (bytes, bytearray)):
        return item  # type: ignore[return-value]  # its messages are validated by prepare_input
    raise GuardInputError(
        f"cannot check an item of type {type(item).__name__}: pass a str, (prompt, response) or messages"
    )


def item_mode(item: CheckItem) -> GuardMode:
    """The moderation mode of a `check_many` item, also of one that cannot be checked (its undecided
    verdict still needs one): the mode its messages select, else the shape's (a pair is a response)."""
    if isinstance(item, GuardInput):
        return item.mode
    try:
        prepared = item_messages(item)
        return prepared.mode if isinstance(prepared, GuardInput) else prepare_input(prepared).mode
    except GuardInputError:
        return GuardMode.RESPONSE if isinstance(item, tuple) else GuardMode.PROMPT
