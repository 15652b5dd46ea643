"""The labels Qwen3Guard-Gen emits: the single source of truth for their spelling."""

from __future__ import annotations

from enum import StrEnum


class GuardMode(StrEnum):
    """Which side of the conversation is judged; chosen by the role of the last message."""

    PROMPT = "prompt"
    RESPONSE = "response"


class Safety(StrEnum):
    SAFE = "Safe"
    UNSAFE = "Unsafe"
    CONTROVERSIAL = "Controversial"


class Category(StrEnum):
    VIOLENT = "Violent"
    NON_VIOLENT_ILLEGAL_ACTS = "Non-violent Illegal Acts"
    SEXUAL_CONTENT = "Sexual Content or Sexual Acts"
    PII = "PII"
    SUICIDE_SELF_HARM = "Suicide & Self-Harm"
    UNETHICAL_ACTS = "Unethical Acts"
    POLITICALLY_SENSITIVE = "Politically Sensitive Topics"
    COPYRIGHT_VIOLATION = "Copyright Violation"
    JAILBREAK = "Jailbreak"


class Strictness(StrEnum):
    """How Controversial is read: strict counts it as unsafe (the default), loose as safe."""

    STRICT = "strict"
    LOOSE = "loose"


#: Categories the model may name, per mode, in the order the guard prompt lists them.
CATEGORIES_BY_MODE: dict[GuardMode, tuple[Category, ...]] = {
    GuardMode.PROMPT: tuple(Category),
    GuardMode.RESPONSE: tuple(c for c in Category if c is not Category.JAILBREAK),
}

#: The 13 category keys of OpenAI's `/v1/moderations` result, in its order.
OPENAI_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
#: The OpenAI keys each of the model's categories maps onto (the table in `_moderation`'s docstring).
QWEN_TO_OPENAI: dict[Category, tuple[str, ...]] = {
    Category.VIOLENT: ("violence",),
    Category.NON_VIOLENT_ILLEGAL_ACTS: ("illicit",),
    Category.SEXUAL_CONTENT: ("sexual",),
    Category.SUICIDE_SELF_HARM: ("self-harm",),
    Category.UNETHICAL_ACTS: ("hate", "harassment"),
    Category.PII: (),
    Category.POLITICALLY_SENSITIVE: (),
    Category.COPYRIGHT_VIOLATION: (),
    Category.JAILBREAK: (),
}
