"""`/v1/guard/checks`: whole conversations as `guard_client.conversation` shows them (tool results and late
system turns as user turns, tool calls, every text part), one check each, typed verdicts with the policy's
action. A conversation is checked as a response when its last turn is the assistant's, else as a prompt."""

from __future__ import annotations

import uuid

from guard_client.conversation import NonText
from guard_gateway.checks.protocol import GuardCheckRequest, GuardCheckResponse, GuardCheckResult
from guard_gateway.config import ModerationSettings
from guard_gateway.errors import InvalidRequest
from guard_gateway.guard import Guards, view_of
from guard_gateway.policy import Policy

ENDPOINT = "checks"


class CheckService:
    def __init__(self, guards: Guards, policy: Policy, settings: ModerationSettings, non_text: NonText) -> None:
        self._guards = guards
        self._policy = policy
        self._settings = settings
        self._non_text = non_text

    async def create(self, request: GuardCheckRequest) -> GuardCheckResponse:
        guard = self._guards.pick(request.model)
        if not request.checks:
            raise InvalidRequest("'checks' must not be an empty array", param="checks")
        if len(request.checks) > self._settings.max_inputs:
            raise InvalidRequest(
                f"'checks' has {len(request.checks)} items, more than the {self._settings.max_inputs} allowed",
                param="checks",
            )
        params = [f"checks[{index}].messages" for index in range(len(request.checks))]
        views = [view_of(c.messages, p, self._non_text) for c, p in zip(request.checks, params, strict=True)]
        inputs = [guard.prepare(view.checked(), p) for view, p in zip(views, params, strict=True)]
        verdicts = await guard.check(inputs, ENDPOINT, params)
        decisions = self._policy.decide_all(verdicts, ENDPOINT)
        results = [
            GuardCheckResult(
                mode=d.verdict.mode,
                safety=d.verdict.safety,
                categories=d.verdict.categories,
                refusal=d.verdict.refusal,
                scores=d.verdict.scores,
                flagged=d.flagged,
                action=d.action,
                error=d.verdict.error,
                policy=d.verdict.policy,
                unread=list(view.unread),
            )
            for d, view in zip(decisions, views, strict=True)
        ]
        return GuardCheckResponse(id=f"gchk-{uuid.uuid4().hex}", model=guard.model, results=results)
