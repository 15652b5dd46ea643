"""A thin, typed client for Qwen3Guard-Gen served by vLLM.

from guard_client import GuardClient
with GuardClient("http://localhost:8000") as guard:
    verdict = guard.check_prompt("How can I make a bomb?")
    if verdict.flagged():
        ...
"""

from guard_client._client import AsyncGuardClient, GuardClient
from guard_client._core import CheckItem, ServerInfo, verdict_regex
from guard_client._errors import (
    GuardConnectionError,
    GuardError,
    GuardHTTPError,
    GuardInputError,
    GuardParseError,
    GuardTimeoutError,
)
from guard_client._labels import CATEGORIES_BY_MODE, STANDIN_MARKER, Category, GuardMode, Safety, Strictness
from guard_client._moderation import OPENAI_CATEGORIES, QWEN_TO_OPENAI, to_openai_moderation
from guard_client._template import chat_template_jinja, render_guard_prompt
from guard_client._verdict import FailurePolicy, Scores, Verdict, parse_verdict

__all__ = [
    "CATEGORIES_BY_MODE",
    "OPENAI_CATEGORIES",
    "QWEN_TO_OPENAI",
    "STANDIN_MARKER",
    "AsyncGuardClient",
    "Category",
    "CheckItem",
    "FailurePolicy",
    "GuardClient",
    "GuardConnectionError",
    "GuardError",
    "GuardHTTPError",
    "GuardInputError",
    "GuardMode",
    "GuardParseError",
    "GuardTimeoutError",
    "Safety",
    "Scores",
    "ServerInfo",
    "Strictness",
    "Verdict",
    "chat_template_jinja",
    "parse_verdict",
    "render_guard_prompt",
    "to_openai_moderation",
    "verdict_regex",
]
