"""LiteLLM's generic guardrail, on the conversation as `guard_client.conversation` shows it.

`request`: the whole conversation the main model will read (`structured_messages`), tool results and late
system turns after the last user message included: prompt moderation up to its last non-assistant turn, and
response moderation of trailing assistant turns the client wrote. Without `structured_messages`, each of
`texts` is a prompt. `response`: the answer (`texts` and `tool_calls`) with response moderation in that
conversation's context. The policy's block answers BLOCKED with severity and categories. Images LiteLLM
sends beside the texts follow `conversation.non_text` as content parts do.
"""

from __future__ import annotations

from guard_client import GuardInput
from guard_client.conversation import NonText
from guard_gateway.errors import UnsupportedRequest
from guard_gateway.guard import Guard, Guards, answer_of, view_of
from guard_gateway.litellm.protocol import GuardrailRequest, GuardrailResponse
from guard_gateway.policy import Policy

ENDPOINT = "litellm"


class GuardrailService:
    def __init__(self, guards: Guards, policy: Policy, non_text: NonText) -> None:
        self._guards = guards
        self._policy = policy
        self._non_text = non_text

    def _inputs(self, request: GuardrailRequest, guard: Guard) -> tuple[list[GuardInput], list[str]]:
        if request.images and self._non_text is NonText.REFUSE:
            raise UnsupportedRequest(
                "images: the guard reads text only; the gateway does not pass unguarded content "
                "(conversation.non_text: pass_annotated lets it through)",
                param="images",
            )
        param = "structured_messages"
        context = view_of(request.structured_messages or [], param, self._non_text)
        if request.input_type == "request":
            if context.messages:
                checks = context.input_checks()
                return [guard.prepare(check, param) for check in checks], [param] * len(checks)
            params = [f"texts[{i}]" for i in range(len(request.texts))]
            return [
                guard.prepare([{"role": "user", "content": text}], param)
                for text, param in zip(request.texts, params, strict=True)
            ], params
        if not request.texts and not request.tool_calls:
            return [], []
        answer = answer_of({"content": request.texts, "tool_calls": request.tool_calls}, "texts", self._non_text)
        return [guard.prepare(context.with_answer(answer.messages[0]["content"]), "texts")], ["texts"]

    async def apply(self, request: GuardrailRequest) -> GuardrailResponse:
        guard = self._guards.pick_if_served(request.model)
        inputs, params = self._inputs(request, guard)
        if not inputs:
            return GuardrailResponse(action="NONE")
        verdicts = await guard.check(inputs, ENDPOINT, params)
        blocked = [d for d in self._policy.decide_all(verdicts, ENDPOINT) if d.blocked]
        if blocked:
            return GuardrailResponse(action="BLOCKED", blocked_reason=blocked[0].reason())
        return GuardrailResponse(action="NONE")
