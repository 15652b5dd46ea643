"""What the rails read of a chat request and answer, and the wire shapes they add (Azure's content-filter
convention plus the `qwen3guard` object). Everything else in a request or answer is passed through unread.

The guard's view of a conversation (`guard_view`): the guard's chat template shows only system, user and
assistant turns, so the view maps the roles the template would drop onto ones it shows, keeping every text
the main LLM reads in front of the guard:
- `tool` / `function` results are untrusted input the model acts on: they are shown as user turns, so a
  conversation that ends with a tool result is checked with prompt moderation of that result in context;
- a later `system` / `developer` message is shown as a user turn (the template shows only a first one);
- an assistant turn's tool calls are appended to its text as `[tool call] name(arguments)`.
The input rail checks the view up to its last non-assistant turn (prompt moderation). Trailing assistant
turns (a prefill the client wrote) are checked too, with response moderation of the whole view.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from guard_client import Category, Strictness, explain, to_openai_moderation
from guard_gateway.errors import GatewayError, InvalidRequest
from guard_gateway.policy import Action, Decision

#: Content part types the guard reads.
TEXT_PARTS = frozenset({"text", "input_text", "refusal"})
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


class UnsupportedRequest(GatewayError):
    """A request shape the rails cannot guard (configured to refuse): never passed on silently."""

    status_code = 422

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message, param=param, code="unsupported_request")


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


@dataclass(frozen=True)
class GuardView:
    """The conversation as the guard is shown it, and the request parts it could not read."""

    messages: list[dict[str, str]]
    unread: list[str]

    def input_checks(self) -> list[tuple[list[dict[str, str]], str]]:
        """(messages, param) of each input-rail check (see the module docstring)."""
        last_input = max((i for i, m in enumerate(self.messages) if m["role"] != "assistant"), default=-1)
        checks = []
        if last_input >= 0:
            head = [dict(m) for m in self.messages[: last_input + 1]]
            if head[-1]["role"] == "system":  # a lone system prompt is what the model is asked
                head[-1]["role"] = "user"
            checks.append((head, "messages"))
        if last_input < len(self.messages) - 1:
            checks.append((self.messages, "messages"))
        return checks

    def with_answer(self, answer: str) -> list[dict[str, str]]:
        return [*self.messages, {"role": "assistant", "content": answer}]


def _tool_calls_text(calls: Any) -> str:
    """Tool calls as the text the guard reads: `[tool call] name(arguments)`, a line each."""
    lines = []
    for call in calls if isinstance(calls, list) else []:
        function = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(function, Mapping):
            lines.append(f"[tool call] {function.get('name') or ''}({function.get('arguments') or ''})")
    return "\n".join(lines)


def _content_text(content: Any, param: str, unread: list[str], refuse: bool) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise InvalidRequest(f"Invalid value for {param!r}: content must be a string or an array of parts", param=param)
    texts = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind in TEXT_PARTS and isinstance(part.get(kind if kind != "input_text" else "text"), str):
            texts.append(part[kind if kind != "input_text" else "text"])
            continue
        where = f"{param}[{index}]"
        if refuse:
            raise UnsupportedRequest(
                f"{where} is a {kind or 'non-text'} part, which the guard cannot read; the gateway does not pass "
                "unguarded content (chat.unsupported: pass_annotated lets it through, annotated)",
                param=where,
            )
        unread.append(where)
    return "\n".join(text for text in texts if text)


def guard_view(messages: Sequence[Any], refuse_unsupported: bool) -> GuardView:
    view: list[dict[str, str]] = []
    unread: list[str] = []
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise InvalidRequest(f"Invalid value for {param!r}: a message needs a string 'role'", param=param)
        role = message["role"]
        text = _content_text(message.get("content"), f"{param}.content", unread, refuse_unsupported)
        if role == "assistant":
            text = answer_text({**message, "content": text})
            view.append({"role": "assistant", "content": text})
        elif role in ("system", "developer"):
            view.append({"role": "system" if index == 0 else "user", "content": text})
        elif role in ("user", "tool", "function"):
            view.append({"role": "user", "content": text})
        else:
            raise InvalidRequest(f"Invalid value for {param}.role: unknown role {role!r}", param=f"{param}.role")
    return GuardView(view, unread)


def answer_text(message: Mapping[str, Any]) -> str:
    """The text of an answer the output rail checks: content, refusal and tool-call arguments."""
    parts = [message.get("content"), message.get("refusal"), _tool_calls_text(message.get("tool_calls"))]
    function_call = message.get("function_call")
    if isinstance(function_call, Mapping):
        parts.append(_tool_calls_text([{"function": function_call}]))
    return "\n".join(part for part in parts if isinstance(part, str) and part)


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
            if not isinstance(category, Category):
                continue  # a custom policy's category has no Azure key
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
