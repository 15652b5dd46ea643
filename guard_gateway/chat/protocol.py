"""What the rails read of a chat request and answer, and the wire shapes they add (Azure's content-filter
convention plus the `qwen3guard` object). Everything else in a request or answer is passed through unread.

What the guard is shown of the messages is `guard_client.conversation`'s view, the same on every endpoint
(docs/conversation-view.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from guard_client import Category, Strictness, explain, to_openai_moderation
from guard_gateway.errors import GatewayError, InvalidRequest
from guard_gateway.policy import Action, Decision

#: Qwen3Guard's categories under Azure's content_filter_results keys where Azure has one.
AZURE_KEYS: dict[Category, str] = {
    Category.VIOLENT: "violence",
    Category.NON_VIOLENT_ILLEGAL_ACTS: "illegal_acts",
    Category.SEXUAL_CONTENT: "sexual",
    Category.PII: "pii",
    Category.SUICIDE_SELF_HARM: "self_harm",
    Category.UNETHICAL_ACTS: "unethical_acts",
    Category.POLITICALLY_SENSITIVE: "politically_sensitive",
    Category.COPYRIGHT_VIOLATION: "protected_material_text",
    Category.JAILBREAK: "jailbreak",
}
#: Azure reports these as detections (`detected`) rather than graded harms (`severity`).
DETECTIONS = frozenset({Category.JAILBREAK, Category.COPYRIGHT_VIOLATION})


class ContentFiltered(GatewayError):
    """The input rail blocked the prompt: HTTP 400 as Azure OpenAI sends it (also for stream: true)."""

    status_code = 400

    def __init__(self, decisions: Sequence[Decision], strictness: Strictness) -> None:
        blocked = [decision for decision in decisions if decision.blocked]
        super().__init__(
            "The prompt was filtered by the guard's content policy: " + "; ".join(d.reason() for d in blocked),
            param="prompt",
            code="content_filter",
        )
        self.decisions = blocked
        self.strictness = strictness

    def body(self) -> dict[str, Any]:
        body = super().body()
        body["error"]["type"] = None
        body["error"]["status"] = 400
        body["error"]["innererror"] = {
            "code": "ResponsibleAIPolicyViolation",
            "content_filter_result": filter_results(self.decisions),
        }
        body["error"]["qwen3guard"] = qwen3guard(self.decisions, self.strictness)
        return body


class ChatRails(BaseModel):
    """The only fields of a chat request the rails read; the request is forwarded as it came."""

    model_config = ConfigDict(extra="allow")

    messages: list[Any] = Field(min_length=1)
    stream: bool | None = False
    n: int | None = Field(default=1, ge=1, le=128)

    @classmethod
    def read(cls, body: Any) -> ChatRails:
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object")
        try:
            return cls.model_validate(body)
        except ValidationError as exc:
            error = exc.errors()[0]
            param = ".".join(str(part) for part in error["loc"]) or None
            raise InvalidRequest(f"Invalid value for {param!r}: {error['msg']}", param=param) from None


def _category_result(decision: Decision, category: Category) -> dict[str, Any]:
    verdict = decision.verdict
    named = category in verdict.categories and decision.flagged
    filtered = named and decision.blocked
    if category in DETECTIONS:
        return {"filtered": filtered, "detected": named}
    severity = "safe"
    if named:
        severity = "high" if verdict.safety is not None and verdict.safety.value == "Unsafe" else "medium"
    return {"filtered": filtered, "severity": severity}


def filter_results(decisions: Sequence[Decision]) -> dict[str, Any]:
    """Azure's content_filter_result(s) for the verdicts of one prompt or one choice: a key per category of
    the verdict's mode; an undecided verdict is Azure's `error` (content_filter_error: not filtered)."""
    results: dict[str, Any] = {}
    for decision in decisions:
        verdict = decision.verdict
        if not verdict.decided:
            results["error"] = {"code": "content_filter_error", "message": "The contents are not filtered"}
            continue
        for category in verdict.categories or []:
            key = AZURE_KEYS[category]
            result = _category_result(decision, category)
            if key not in results or result["filtered"]:
                results[key] = result
    return results


def qwen3guard(decisions: Sequence[Decision], strictness: Strictness) -> dict[str, Any]:
    """The guard's own verdict objects: the moderation extension plus the explanation, one per check."""
    checks = []
    for decision in decisions:
        wire = to_openai_moderation(decision.verdict, strictness).qwen3guard.model_dump(mode="json")
        wire["action"] = decision.action.value
        wire["failed_open"] = decision.failed_open
        wire["explanation"] = explain(decision.verdict, strictness).model_dump(mode="json")
        checks.append(wire)
    return {"checks": checks}


def header_value(decisions: Sequence[Decision]) -> str:
    """`x-guard-input` / `x-guard-output`: `<verdict>; action=<action>`, several comma-separated."""
    values = []
    for decision in decisions:
        safety = decision.verdict.safety
        verdict = safety.value.lower() if safety is not None else "undecided"
        values.append(f"{verdict}; action={decision.action.value}" + ("; failed_open" if decision.failed_open else ""))
    return ", ".join(values) or "none"


def annotates(decisions: Sequence[Decision]) -> bool:
    """Whether the answer carries the verdicts: a monitor-mode hit or a guard that failed open."""
    return any(d.action is Action.ANNOTATE or d.failed_open for d in decisions)
