"""A thin, typed client for Qwen3Guard-Gen served by vLLM.

from guard_client import GuardClient
with GuardClient("http://localhost:8000") as guard:
    verdict = guard.check_prompt("How can I make a bomb?")
    if verdict.flagged():
        ...
"""

from guard_client._client import AsyncGuardClient, GuardClient
from guard_client._constants import (
    DEFAULT_BASE_URL,
    DEFAULT_CONCURRENCY,
    DEFAULT_MODEL,
    DEFAULT_TIMEOUT,
    ENV_API_KEY,
    ENV_MODEL,
    ENV_URL,
    MAX_TOKENS,
    STANDIN_MARKER,
    STANDIN_WARNING,
    is_standin_model,
)
from guard_client._errors import (
    GuardConnectionError,
    GuardError,
    GuardHTTPError,
    GuardInputError,
    GuardParseError,
    GuardTimeoutError,
)
from guard_client._explain import (
    CategoryExplanation,
    DecidedBy,
    Explanation,
    FailureExplanation,
    RefusalExplanation,
    SeverityExplanation,
    explain,
    render_explanation,
)
from guard_client._flows import CheckOptions, ServerInfo
from guard_client._grammar import (
    MAX_CATEGORIES,
    MAX_TOKENS_CONSTRAINED,
    MAX_TOKENS_DETAILS,
    VERDICT_PREFIX,
    details_prefix,
    details_regex,
    verdict_regex,
)
from guard_client._input import CheckItem, GuardInput, Messages, item_messages, prepare_input, render_guard_prompt
from guard_client._labels import CATEGORIES_BY_MODE, Category, GuardMode, Safety, Strictness
from guard_client._locate import (
    LocateSearch,
    Location,
    Span,
    Window,
    check_bound,
    locate,
    locate_search,
    segment,
    window_messages,
)
from guard_client._moderation import (
    OPENAI_CATEGORIES,
    QWEN_TO_OPENAI,
    ModerationResult,
    Qwen3GuardModeration,
    to_openai_moderation,
)
from guard_client._policy import (
    CATEGORY_DEFINITIONS,
    POLICY_SOURCE,
    REFUSAL_MEANING,
    SEVERITY_DEFINITIONS,
    SEVERITY_IN_MODE,
    STRICTNESS_MEANING,
    policy_name,
)
from guard_client._requests import VerdictTokens, chat_request, details_request, tokenize_request, verdict_request
from guard_client._retry import DEFAULT_MAX_RETRIES
from guard_client._runner import (
    CheckRecord,
    ReplicasDownError,
    ResultsBusyError,
    ResultsLog,
    ResumableRun,
    RunManifest,
    RunMismatchError,
    RunSetupError,
    RunStats,
    WorkItem,
)
from guard_client._screen_cli import screen_command
from guard_client._screen_input import RowProblem, ScreenInput, ScreenInputError, read_input
from guard_client._stats import percentile
from guard_client._template import chat_template_jinja
from guard_client._verdict import FailurePolicy, Scores, Verdict, parse_verdict

__all__ = [
    "CATEGORIES_BY_MODE",
    "CATEGORY_DEFINITIONS",
    "DEFAULT_BASE_URL",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_MODEL",
    "DEFAULT_TIMEOUT",
    "ENV_API_KEY",
    "ENV_MODEL",
    "ENV_URL",
    "MAX_CATEGORIES",
    "MAX_TOKENS",
    "MAX_TOKENS_CONSTRAINED",
    "MAX_TOKENS_DETAILS",
    "OPENAI_CATEGORIES",
    "POLICY_SOURCE",
    "QWEN_TO_OPENAI",
    "REFUSAL_MEANING",
    "SEVERITY_DEFINITIONS",
    "SEVERITY_IN_MODE",
    "STANDIN_MARKER",
    "STANDIN_WARNING",
    "STRICTNESS_MEANING",
    "VERDICT_PREFIX",
    "AsyncGuardClient",
    "Category",
    "CategoryExplanation",
    "CheckItem",
    "CheckOptions",
    "CheckRecord",
    "DecidedBy",
    "Explanation",
    "FailureExplanation",
    "FailurePolicy",
    "GuardClient",
    "GuardConnectionError",
    "GuardError",
    "GuardHTTPError",
    "GuardInput",
    "GuardInputError",
    "GuardMode",
    "GuardParseError",
    "GuardTimeoutError",
    "LocateSearch",
    "Location",
    "Messages",
    "ModerationResult",
    "Qwen3GuardModeration",
    "RefusalExplanation",
    "ReplicasDownError",
    "ResultsBusyError",
    "ResultsLog",
    "ResumableRun",
    "RowProblem",
    "RunManifest",
    "RunMismatchError",
    "RunSetupError",
    "RunStats",
    "Safety",
    "Scores",
    "ScreenInput",
    "ScreenInputError",
    "ServerInfo",
    "SeverityExplanation",
    "Span",
    "Strictness",
    "Verdict",
    "VerdictTokens",
    "Window",
    "WorkItem",
    "chat_request",
    "chat_template_jinja",
    "check_bound",
    "details_prefix",
    "details_regex",
    "details_request",
    "explain",
    "is_standin_model",
    "item_messages",
    "locate",
    "locate_search",
    "parse_verdict",
    "percentile",
    "policy_name",
    "prepare_input",
    "read_input",
    "render_explanation",
    "render_guard_prompt",
    "screen_command",
    "segment",
    "to_openai_moderation",
    "tokenize_request",
    "verdict_regex",
    "verdict_request",
    "window_messages",
]
