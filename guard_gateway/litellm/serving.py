"""LiteLLM's generic guardrail: `request` is prompt moderation, `response` response moderation in
the conversation's context; the policy's block answers BLOCKED with severity and categories."""

from __future__ import annotations

from typing import Any

from guard_client import GuardInput
from guard_gateway.guard import Guard, Guards
from guard_gateway.litellm.protocol import GuardrailAction, GuardrailRequest, GuardrailResponse, InputType
from guard_gateway.policy import Policy

ENDPOINT = "litellm"
_CONVERSATION_ROLES = ("system", "user", "assistant")


def _text(content: Any) -> str:
    """A message's text; non-text parts (images) are left out, as the guard reads text only."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _context(messages: list[dict[str, Any]] | None) -> list[dict[str, str]]:
    """The conversation up to and including the last user message, text only."""
    kept = [
        {"role": m["role"], "content": _text(m.get("content"))}
        for m in messages or []
        if isinstance(m, dict) and m.get("role") in _CONVERSATION_ROLES
    ]
    last_user = max((i for i, m in enumerate(kept) if m["role"] == "user"), default=-1)
    return kept[: last_user + 1]


class GuardrailService:
    def __init__(self, guards: Guards, policy: Policy) -> None:
        self._guards = guards
        self._policy = policy

    def _inputs(self, request: GuardrailRequest, guard: Guard) -> tuple[list[GuardInput], list[str]]:
        context = _context(request.structured_messages)
        if request.input_type is InputType.REQUEST:
            if context:
                return [guard.prepare(context, "structured_messages")], ["structured_messages"]
            params = [f"texts[{i}]" for i in range(len(request.texts))]
            return [
                guard.prepare([{"role": "user", "content": text}], param)
                for text, param in zip(request.texts, params, strict=True)
            ], params
        if not request.texts:
            return [], []
        answer = {"role": "assistant", "content": "\n".join(request.texts)}
        return [guard.prepare([*context, answer], "texts")], ["texts"]

    async def apply(self, request: GuardrailRequest) -> GuardrailResponse:
        guard = self._guards.pick_if_served(request.model)
        inputs, params = self._inputs(request, guard)
        if not inputs:
            return GuardrailResponse(action=GuardrailAction.NONE)
        verdicts = await guard.check(inputs, ENDPOINT, params)
        blocked = [d for d in self._policy.decide_all(verdicts, ENDPOINT) if d.blocked]
        if blocked:
            return GuardrailResponse(action=GuardrailAction.BLOCKED, blocked_reason=blocked[0].reason())
        return GuardrailResponse(action=GuardrailAction.NONE)
