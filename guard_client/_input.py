"""The input side of a check, decided once: validate and flatten the messages, pick the mode, render.

Every check starts with `prepare_input`; nothing downstream validates, re-derives the mode or
re-renders. A bad input raises `GuardInputError` here, before anything is sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from guard_client._errors import GuardInputError
from guard_client._guard_policy import DEFAULT_POLICY, GuardPolicy
from guard_client._labels import GuardMode
from guard_client._template import mode_of, render_conversation

Messages: TypeAlias = Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class GuardInput:
    """One checkable input: the normalized messages (text content), the mode they select, the exact
    guard prompt rendered for them and the policy it states (the model's own chat template's, by default).

    Every later step (the grammar, the parser, what is sent) reads the policy from here.
    """

    messages: tuple[Mapping[str, str], ...]
    mode: GuardMode
    prompt: str
    policy: GuardPolicy = DEFAULT_POLICY

    def message_list(self) -> list[dict[str, str]]:
        """The messages as a JSON-ready list (a request body's `messages`)."""
        return [dict(message) for message in self.messages]


#: What `check_many` accepts per item: a prompt, a (prompt, response) pair, messages, or an input already
#: prepared with `prepare_input` (checked as it is: nothing is validated or rendered twice).
CheckItem: TypeAlias = str | tuple[str, str] | Messages | GuardInput


def content_text(content: Any) -> str:
    """Flatten a message's content to the string the template concatenates.

    Multi-part (OpenAI content-array) content is joined with newlines and empty parts are
    skipped, as vLLM does for templates that take string content; a non-text part is refused.
    """
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence) and not isinstance(content, (bytes, bytearray)):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
                raise GuardInputError(f"message content part of type {kind!r} is not text; the guard reads text only")
        return "\n".join(text for text in texts if text)
    raise GuardInputError(f"message content must be a string or a list of text parts, not {type(content).__name__}")


def prepare_input(messages: Messages, policy: GuardPolicy = DEFAULT_POLICY) -> GuardInput:
    """Validate `messages`, flatten their content to text, pick the mode and render the guard prompt
    stating `policy` (the model's published policy by default)."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise GuardInputError("messages must be a list of {'role': ..., 'content': ...} mappings")
    if not messages:
        raise GuardInputError("a guard check needs at least one message")
    normalized = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise GuardInputError(f"message {index} must be a mapping with a string 'role' and a 'content'")
        try:
            text = content_text(message.get("content"))
        except GuardInputError as exc:
            raise GuardInputError(f"message {index}: {exc}") from None
        normalized.append({"role": message["role"], "content": text})
    mode = mode_of(normalized)
    if not policy.categories_for(mode):
        raise GuardInputError(f"policy {policy.name!r} has no category for {mode.value} moderation")
    return GuardInput(tuple(normalized), mode, render_conversation(mode, normalized, policy), policy)


def render_guard_prompt(messages: Messages, policy: GuardPolicy = DEFAULT_POLICY) -> str:
    """Render the guard prompt for `messages`: with the default policy byte for byte as Qwen3Guard-Gen's
    chat template does; with another, the same prompt listing that policy's categories."""
    return prepare_input(messages, policy).prompt


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
