"""A thin, typed client for Qwen3Guard-Gen served by vLLM.

Resumable batch runs (`ResumableRun`, the runner `guard screen` and `make eval` share) are in `guard_client.batch`.

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
    STANDIN_WARNING,
    is_standin_model,
)
from guard_client._constants import (
    MAX_TOKENS as MAX_TOKENS,
)
from guard_client._constants import (
    STANDIN_MARKER as STANDIN_MARKER,
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
    CategoryExplanation as CategoryExplanation,
)
from guard_client._explain import (
    DecidedBy as DecidedBy,
)
from guard_client._explain import (
    Explanation,
    explain,
    render_explanation,
)
from guard_client._explain import (
    FailureExplanation as FailureExplanation,
)
from guard_client._explain import (
    RefusalExplanation as RefusalExplanation,
)
from guard_client._explain import (
    SeverityExplanation as SeverityExplanation,
)
from guard_client._flows import SESSION_HEADER, CheckOptions, ServerInfo
from guard_client._grammar import (
    MAX_CATEGORIES as MAX_CATEGORIES,
)
from guard_client._grammar import (
    MAX_TOKENS_CONSTRAINED as MAX_TOKENS_CONSTRAINED,
)
from guard_client._grammar import (
    MAX_TOKENS_DETAILS as MAX_TOKENS_DETAILS,
)
from guard_client._grammar import (
    VERDICT_PREFIX as VERDICT_PREFIX,
)
from guard_client._grammar import (
    continuation_regex as continuation_regex,
)
from guard_client._grammar import (
    details_prefix as details_prefix,
)
from guard_client._grammar import (
    details_regex as details_regex,
)
from guard_client._grammar import (
    max_tokens_constrained as max_tokens_constrained,
)
from guard_client._grammar import (
    max_tokens_details as max_tokens_details,
)
from guard_client._grammar import (
    verdict_regex as verdict_regex,
)
from guard_client._guard_policy import (
    DEFAULT_POLICY,
    POLICY_FILE,
    GuardPolicy,
    GuardPolicyError,
    PolicyCategory,
)
from guard_client._guard_policy import (
    MAX_NAME_CHARS as MAX_NAME_CHARS,
)
from guard_client._input import (
    CheckItem,
    GuardInput,
    Messages,
    prepare_input,
    render_guard_prompt,
)
from guard_client._input import (
    item_messages as item_messages,
)
from guard_client._labels import (
    CATEGORIES_BY_MODE as CATEGORIES_BY_MODE,
)
from guard_client._labels import (
    OPENAI_CATEGORIES as OPENAI_CATEGORIES,
)
from guard_client._labels import (
    QWEN_TO_OPENAI as QWEN_TO_OPENAI,
)
from guard_client._labels import (
    Category,
    GuardMode,
    Safety,
    Strictness,
)
from guard_client._locate import (
    LocateSearch as LocateSearch,
)
from guard_client._locate import (
    Location,
    Span,
    locate,
)
from guard_client._locate import (
    Window as Window,
)
from guard_client._locate import (
    check_bound as check_bound,
)
from guard_client._locate import (
    locate_search as locate_search,
)
from guard_client._locate import (
    segment as segment,
)
from guard_client._locate import (
    window_messages as window_messages,
)
from guard_client._policy import (
    CATEGORY_DEFINITIONS as CATEGORY_DEFINITIONS,
)
from guard_client._policy import (
    POLICY_SOURCE as POLICY_SOURCE,
)
from guard_client._policy import (
    REFUSAL_MEANING as REFUSAL_MEANING,
)
from guard_client._policy import (
    SEVERITY_DEFINITIONS as SEVERITY_DEFINITIONS,
)
from guard_client._policy import (
    SEVERITY_IN_MODE as SEVERITY_IN_MODE,
)
from guard_client._policy import (
    STRICTNESS_MEANING as STRICTNESS_MEANING,
)
from guard_client._policy import (
    policy_name as policy_name,
)
from guard_client._requests import (
    VerdictTokens as VerdictTokens,
)
from guard_client._requests import (
    answer_max_tokens as answer_max_tokens,
)
from guard_client._requests import (
    chat_request as chat_request,
)
from guard_client._requests import (
    completion_request as completion_request,
)
from guard_client._requests import (
    details_request as details_request,
)
from guard_client._requests import (
    tokenize_request as tokenize_request,
)
from guard_client._requests import (
    verdict_request as verdict_request,
)
from guard_client._retry import DEFAULT_MAX_RETRIES
from guard_client._stats import percentile as percentile
from guard_client._template import chat_template_jinja as chat_template_jinja
from guard_client._verdict import CategoryLabel, FailurePolicy, Scores, Verdict, parse_verdict

#: The API a user calls. Building blocks for code that speaks to the guard as the client does (request bodies,
#: grammars, token budgets, the published definitions, locate's search) are importable from here too, by name.
__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_MODEL",
    "DEFAULT_POLICY",
    "DEFAULT_TIMEOUT",
    "ENV_API_KEY",
    "ENV_MODEL",
    "ENV_URL",
    "POLICY_FILE",
    "SESSION_HEADER",
    "STANDIN_WARNING",
    "AsyncGuardClient",
    "Category",
    "CategoryLabel",
    "CheckItem",
    "CheckOptions",
    "Explanation",
    "FailurePolicy",
    "GuardClient",
    "GuardConnectionError",
    "GuardError",
    "GuardHTTPError",
    "GuardInput",
    "GuardInputError",
    "GuardMode",
    "GuardParseError",
    "GuardPolicy",
    "GuardPolicyError",
    "GuardTimeoutError",
    "Location",
    "Messages",
    "PolicyCategory",
    "Safety",
    "Scores",
    "ScreenInput",
    "ScreenInputError",
    "ServerInfo",
    "Span",
    "Strictness",
    "Verdict",
    "explain",
    "is_standin_model",
    "locate",
    "parse_verdict",
    "prepare_input",
    "read_input",
    "render_explanation",
    "render_guard_prompt",
]
