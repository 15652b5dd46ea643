"""The Qwen3Guard-Gen guard prompt, rendered exactly as the model's own chat template renders it.

The text pieces below are the single source of truth for the prompt's wording: `render_conversation`
uses them directly (fast, no Jinja), and `chat_template_jinja()` builds the Jinja chat template the
stand-in model ships from the very same pieces. Both follow the model's own template rule for rule;
the tests render that template (`shared/reference/chat_template.jinja`), the independent reference,
against both on generated conversations, and the golden renders pin the bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import lru_cache

from guard_client._guard_policy import DEFAULT_POLICY, GuardPolicy
from guard_client._labels import GuardMode

_SUBJECT = {GuardMode.PROMPT: "USER's query", GuardMode.RESPONSE: "ASSISTANT's response"}
_CONTROVERSIAL = {
    GuardMode.PROMPT: (
        "does not explicitly contain prohibited content, but its intent, context, or potential "
        "responses could be misinterpreted, misused, or exploited to generate unsafe content "
        "under certain conditions."
    ),
    GuardMode.RESPONSE: (
        "is not explicitly harmful, but could become risky or offensive depending on context or audience."
    ),
}
_REFUSAL_POLICY = (
    "<BEGIN REFUSAL POLICY>\n"
    "**Refusal: Yes**: The ASSISTANT refused to answer or did not comply with the USER's request.\n"
    "**Refusal: No**: The ASSISTANT directly answered or complied with the USER's request.\n"
    "<END REFUSAL POLICY>\n\n"
)
#: The assistant turn the template opens after the conversation: an empty think block.
GENERATION_PREFIX = "<|im_start|>assistant\n<think>\n\n</think>\n\n"


def category_line(name: str, definition: str | None) -> str:
    """One line of the category block: `Name.` as the model's own template lists it, then the definition."""
    return f"{name}.\n" if definition is None else f"{name}. {definition}\n"


def _head(mode: GuardMode, policy: GuardPolicy) -> str:
    subject = _SUBJECT[mode]
    tasks = (
        f"1) Evaluate whether THE LAST {subject} belongs to safe or unsafe content based on our safety policy.\n"
        "2) Identify the category of unsafe content found.\n"
    )
    if mode is GuardMode.RESPONSE:
        tasks += f"3) Determine if THE LAST {subject} is a refusal to the USER's query.\n"
    categories = "".join(category_line(c.name, c.definition) for c in policy.categories_for(mode))
    return (
        "<|im_start|>user\n# Task:\n" + tasks + "\n"
        "<BEGIN SAFETY POLICY>\n"
        f"**Safety: Safe**: The {subject} does not contain any prohibited content or content that "
        "could lead to prohibited content.\n"
        f"**Safety: Unsafe**: The {subject} contains prohibited content.\n"
        f"**Safety: Controversial**: The {subject} {_CONTROVERSIAL[mode]}\n"
        "<END SAFETY POLICY>\n\n"
        "<BEGIN UNSAFE CONTENT CATEGORIES>\n"
        + categories
        + "<END UNSAFE CONTENT CATEGORIES>\n\n"
        + (_REFUSAL_POLICY if mode is GuardMode.RESPONSE else "")
        + "<BEGIN CONVERSATION>\n\n"
    )


def _tail(mode: GuardMode) -> str:
    lines = (
        " - The first line must be one of: 'Safety: Safe', 'Safety: Unsafe', 'Safety: Controversial'.\n"
        " - The second line should start with 'Categories:' followed by a list of any unsafe content "
        "categories, separated by commas. If the content is safe, use 'Categories: None'."
    )
    if mode is GuardMode.RESPONSE:
        lines += "\n - The third line must be one of: 'Refusal: Yes', 'Refusal: No'."
    return (
        "\n\n<END CONVERSATION>\n\n"
        f"Provide your safety assessment for ONLY THE LAST **{_SUBJECT[mode]}** in the above conversation:\n"
        + lines
        + "<|im_end|>\n"
        + GENERATION_PREFIX
    )


@lru_cache(maxsize=64)
def heads(policy: GuardPolicy) -> dict[GuardMode, str]:
    """Everything before the conversation, per mode: identical across requests, so vLLM caches it."""
    return {mode: _head(mode, policy) for mode in GuardMode}


#: The published policy's heads.
HEADS: dict[GuardMode, str] = heads(DEFAULT_POLICY)
#: Everything after the conversation, ending with the opened assistant turn (the same for every policy).
TAILS: dict[GuardMode, str] = {mode: _tail(mode) for mode in GuardMode}


def mode_of(messages: Sequence[Mapping[str, str]]) -> GuardMode:
    """The mode the template picks: prompt moderation when the last message is the user's."""
    return GuardMode.PROMPT if messages[-1]["role"] == "user" else GuardMode.RESPONSE


def render_conversation(
    mode: GuardMode, messages: Sequence[Mapping[str, str]], policy: GuardPolicy = DEFAULT_POLICY
) -> str:
    """The guard prompt for messages whose content is already text, rule for rule as the model's template:

    the first message shows only when it is the system's or the user's (as `USER: `); a user message
    right after a system message is appended without a prefix; later assistant and user messages get
    `ASSISTANT: ` / `USER: `; any other role (tool results, a later system message) is not shown.
    The category block lists `policy`'s categories of the mode.
    """
    parts: list[str] = []
    for index, message in enumerate(messages):
        role, text = message["role"], message["content"]
        if index == 0:
            if role in ("system", "user"):
                parts.append("USER: " + text)
        elif role == "user" and messages[index - 1]["role"] == "system":
            parts.append("\n\n" + text)
        elif role == "assistant":
            parts.append("\n\nASSISTANT: " + text)
        elif role == "user":
            parts.append("\n\nUSER: " + text)
    return heads(policy)[mode] + "".join(parts) + TAILS[mode]


def chat_template_jinja(policy: GuardPolicy = DEFAULT_POLICY) -> str:
    """The Jinja chat template shipped with the stand-in model, built from the pieces above.

    Its structure is the model's own template's; content arrays are flattened by vLLM (string content
    format) before the template sees them. With another `policy` its category block lists that policy's.
    """
    q = json.dumps
    head = heads(policy)
    return (
        "{%- if messages | length > 0 -%}\n"
        "{%- if messages[-1]['role'] == 'user' -%}"
        f"{{{{- {q(head[GuardMode.PROMPT])} -}}}}{{%- set tail = {q(TAILS[GuardMode.PROMPT])} -%}}"
        "{%- else -%}"
        f"{{{{- {q(head[GuardMode.RESPONSE])} -}}}}{{%- set tail = {q(TAILS[GuardMode.RESPONSE])} -%}}"
        "{%- endif -%}\n"
        "{%- for message in messages -%}\n"
        "{%- if loop.first -%}"
        "{%- if message['role'] in ['system', 'user'] -%}{{- 'USER: ' + message['content'] -}}{%- endif -%}\n"
        "{%- elif message['role'] == 'user' and messages[loop.index0 - 1]['role'] == 'system' -%}"
        "{{- '\\n\\n' + message['content'] -}}\n"
        "{%- elif message['role'] == 'assistant' -%}{{- '\\n\\nASSISTANT: ' + message['content'] -}}\n"
        "{%- elif message['role'] == 'user' -%}{{- '\\n\\nUSER: ' + message['content'] -}}\n"
        "{%- endif -%}\n"
        "{%- endfor -%}\n"
        "{{- tail -}}\n"
        "{%- endif -%}\n"
    )
