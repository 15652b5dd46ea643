"""What the guard is shown of a conversation: one view for every surface that checks one.

An agent's model reads more than the guard's chat template shows: the template renders a first system or
user turn, then user and assistant turns, and drops everything else. `conversation_view` maps what the
template would drop onto turns it shows, so every text the main model reads is in front of the guard:

- `user` turns are user turns; a first `system` / `developer` turn stays the system turn;
- `tool` / `function` results are untrusted input the model acts on (a web page, a file, another agent):
  user turns, so a conversation that ends with a tool result is checked as a prompt, that result in context;
- a later `system` / `developer` turn (the template shows only a first one) is a user turn;
- an assistant turn is its text, refusal and tool calls, each call as a line `[tool call] name(arguments)`;
  one that opens the conversation gets an empty user turn before it (the template shows no first one);
- every text part of a content array, joined with newlines (`text`, `input_text`, `output_text`, `refusal`);
- a non-text part (an image, audio, a file) is refused (`NonText.REFUSE`, `NonTextPartError` naming the
  part), or passed unread and listed in `ConversationView.unread` (`NonText.PASS_ANNOTATED`), so the caller
  can say the answer was only partly checked.

A view is checked as a prompt when its last turn is not the assistant's (the last user turn, tool result or
late system turn in the context of all before it), as a response when it is. The view's turns are roles
the template shows, so `prepare_input` renders them byte for byte as the model's own template does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from guard_client._errors import GuardInputError
from guard_client._labels import GuardMode

#: Content part types the guard reads, and the key that holds each one's text.
TEXT_PARTS = {"text": "text", "input_text": "text", "output_text": "text", "refusal": "refusal"}
#: Roles whose turns are shown as user turns: results the model reads as input.
TOOL_ROLES = ("tool", "function")
SYSTEM_ROLES = ("system", "developer")


class NonText(StrEnum):
    """What a view does with a part the guard cannot read: one setting for every surface."""

    #: Refused with an error naming the part: nothing unguarded passes.
    REFUSE = "refuse"
    #: Passed unread and listed in `ConversationView.unread`; the text around it is checked.
    PASS_ANNOTATED = "pass_annotated"


class ConversationError(GuardInputError):
    """A conversation the view cannot read; `param` names the offending part (`messages[2].content`)."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


class NonTextPartError(ConversationError):
    """A non-text part under `NonText.REFUSE`."""


@dataclass(frozen=True)
class ConversationView:
    """The conversation as the guard is shown it (system, user and assistant turns, text only) and the
    non-text parts it passed unread."""

    messages: tuple[Mapping[str, str], ...]
    unread: tuple[str, ...] = ()

    @property
    def mode(self) -> GuardMode:
        """Checked as a whole: a response when the last turn is the assistant's, else a prompt."""
        return GuardMode.RESPONSE if self.messages and self.messages[-1]["role"] == "assistant" else GuardMode.PROMPT

    def checked(self) -> list[dict[str, str]]:
        """The turns of one check of the whole view. A lone system prompt is what the model is asked:
        it is checked as the user's (the template would otherwise read it as a response)."""
        turns = [dict(message) for message in self.messages]
        if len(turns) == 1 and turns[0]["role"] == "system":
            turns[0]["role"] = "user"
        return turns

    def input_checks(self) -> list[list[dict[str, str]]]:
        """The checks of a request's input: the view up to its last non-assistant turn as a prompt, and,
        when the client wrote trailing assistant turns (a prefill), the whole view as a response."""
        last_input = max((i for i, m in enumerate(self.messages) if m["role"] != "assistant"), default=-1)
        checks = []
        if last_input >= 0:
            checks.append(ConversationView(self.messages[: last_input + 1]).checked())
        if last_input < len(self.messages) - 1:
            checks.append(self.checked())
        return checks

    def with_answer(self, answer: str) -> list[dict[str, str]]:
        """The response check of `answer` (see `answer_text`) in this conversation's context (an empty user
        turn when there is none: the template shows no first assistant turn)."""
        context = [dict(message) for message in self.messages] or [{"role": "user", "content": ""}]
        return [*context, {"role": "assistant", "content": answer}]


def content_text(content: Any, param: str = "content", unread: list[str] | None = None) -> str:
    """A message content's text: a string as it is; the text parts of an array (or bare strings in it),
    joined with newlines, empty ones skipped (as vLLM flattens arrays for string templates); null as empty.

    A non-text part raises `NonTextPartError` naming it, unless `unread` is given: then its name is
    appended there and the part skipped.
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, Sequence) or isinstance(content, (bytes, bytearray)):
        raise ConversationError(
            f"{param} must be a string or a list of text parts, not {type(content).__name__}", param
        )
    texts = []
    for index, part in enumerate(content):
        if isinstance(part, str):
            texts.append(part)
            continue
        kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
        key = TEXT_PARTS.get(kind) if isinstance(kind, str) else None
        if key is not None and isinstance(part, Mapping) and isinstance(part.get(key), str):
            texts.append(part[key])
            continue
        where = f"{param}[{index}]"
        if unread is None:
            raise NonTextPartError(f"{where}: a part of type {kind!r} is not text; the guard reads text only", where)
        unread.append(where)
    return "\n".join(text for text in texts if text)


def _tool_calls_text(calls: Any) -> list[str]:
    lines = []
    for call in calls if isinstance(calls, list) else []:
        function = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(function, Mapping):
            name, arguments = function.get("name") or "", function.get("arguments") or ""
            arguments = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
            lines.append(f"[tool call] {name}({arguments})")
    return lines


def answer_text(message: Mapping[str, Any], param: str = "message", non_text: NonText = NonText.REFUSE) -> str:
    """An assistant message's text as the guard reads it: its content, its refusal and a line
    `[tool call] name(arguments)` per tool call (and per legacy `function_call`)."""
    return _answer_text(message, param, [] if non_text is NonText.PASS_ANNOTATED else None)


def answer_view(
    message: Mapping[str, Any], non_text: NonText = NonText.REFUSE, param: str = "message"
) -> ConversationView:
    """An answer (an assistant message) as a one-turn view: its `answer_text` and the parts passed unread."""
    unread: list[str] | None = [] if non_text is NonText.PASS_ANNOTATED else None
    text = _answer_text(message, param, unread)
    return ConversationView(({"role": "assistant", "content": text},), tuple(unread or ()))


def _answer_text(message: Mapping[str, Any], param: str, unread: list[str] | None) -> str:
    parts = [content_text(message.get("content"), f"{param}.content", unread)]
    refusal = message.get("refusal")
    parts.append(refusal if isinstance(refusal, str) else "")
    parts += _tool_calls_text(message.get("tool_calls"))
    function_call = message.get("function_call")
    if isinstance(function_call, Mapping):
        parts += _tool_calls_text([{"function": function_call}])
    return "\n".join(part for part in parts if part)


def conversation_view(
    messages: Sequence[Any], non_text: NonText = NonText.REFUSE, param: str = "messages"
) -> ConversationView:
    """The guard's view of OpenAI chat `messages` (see the module docstring). A message that is not a
    mapping with a known string role, or content that is not text, raises `ConversationError`."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise ConversationError(f"{param} must be a list of messages", param)
    view: list[dict[str, str]] = []
    unread: list[str] | None = [] if non_text is NonText.PASS_ANNOTATED else None
    for index, message in enumerate(messages):
        where = f"{param}[{index}]"
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise ConversationError(f"{where} must be a message with a string 'role'", where)
        role = message["role"]
        if role == "assistant":
            view.append({"role": "assistant", "content": _answer_text(message, where, unread)})
            continue
        text = content_text(message.get("content"), f"{where}.content", unread)
        if role in SYSTEM_ROLES:
            view.append({"role": "system" if index == 0 else "user", "content": text})
        elif role == "user" or role in TOOL_ROLES:
            view.append({"role": "user", "content": text})
        else:
            raise ConversationError(f"{where}.role: unknown role {role!r}", f"{where}.role")
    if view and view[0]["role"] == "assistant":
        # The template shows no first assistant turn (a greeting, or one a client forged): an empty user
        # turn before it puts it in front of the guard.
        view.insert(0, {"role": "user", "content": ""})
    return ConversationView(tuple(view), tuple(unread or ()))
