"""How an answer of each interface maps to an outcome, and when it reads as Safe (or let through)."""

from __future__ import annotations

import json
from typing import Any

from guard_client import GuardError, GuardInputError, Safety, Verdict
from reliability.report import Outcome

#: The 5xx the gateway documents: the guard could not decide (fail_closed), the main LLM failed.
DOCUMENTED_5XX = {(503, "guard_unavailable"): Outcome.POLICY, (502, "upstream_unavailable"): Outcome.UPSTREAM_ERROR}


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def envelope_ok(body: Any) -> bool:
    """OpenAI's error envelope: {"error": {"message": str, "type", "param", "code"}}."""
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, dict) and isinstance(error.get("message"), str) and {"type", "param", "code"} <= set(error)


def classify_http(status: int, text: str, headers: Any) -> tuple[Outcome, str]:
    """The outcome of one gateway answer, and a problem with its shape ('' when none)."""
    body = _json(text)
    if status < 400:
        return (Outcome.POLICY if '"fail_open"' in text else Outcome.VERDICT), ""
    code = body["error"].get("code") if envelope_ok(body) else None
    if status < 500:
        problem = "" if envelope_ok(body) else f"{status} without OpenAI's error envelope: {text[:200]}"
        if status == 429 and "retry-after" not in headers:
            problem = "429 without Retry-After"
        return Outcome.CLEAR_ERROR, problem
    documented = DOCUMENTED_5XX.get((status, str(code)))
    if documented is None:
        return Outcome.UNEXPECTED_5XX, f"{status}: {text[:200]}"
    if status == 503 and "retry-after" not in headers:
        return documented, "503 guard_unavailable without Retry-After"
    return documented, ""


def allowed_http(path: str, status: int, text: str) -> bool:
    """Whether a 2xx answer lets content through or reads it as Safe."""
    if status >= 300:
        return False
    body = _json(text)
    if not isinstance(body, dict):
        return False
    if path.endswith("/moderations") or path.endswith("/guard/checks"):
        results = body.get("results") or []
        return any(
            isinstance(r, dict) and (r.get("flagged") is False or r.get("safety") == Safety.SAFE.value) for r in results
        )
    if "litellm" in path:
        return body.get("action") == "NONE"
    if path.endswith("/chat/completions"):
        return any(c.get("finish_reason") != "content_filter" for c in body.get("choices") or [])
    return False


def classify_verdict(verdict: Verdict) -> Outcome:
    if verdict.decided:
        return Outcome.VERDICT
    if verdict.error_type == GuardInputError.__name__:
        return Outcome.CLEAR_ERROR
    return Outcome.POLICY


def classify_exception(exc: BaseException) -> Outcome:
    if isinstance(exc, GuardInputError):
        return Outcome.CLEAR_ERROR
    if isinstance(exc, GuardError):
        return Outcome.POLICY
    return Outcome.CRASH
