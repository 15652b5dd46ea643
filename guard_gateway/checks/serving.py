"""`/v1/guard/checks`: whole conversations, typed verdicts with the policy's action."""

from __future__ import annotations

import uuid

from guard_gateway.checks.protocol import GuardCheckRequest, GuardCheckResponse, GuardCheckResult
from guard_gateway.config import ModerationSettings
from guard_gateway.errors import InvalidRequest
from guard_gateway.guard import Guards
from guard_gateway.policy import Policy

ENDPOINT = "checks"


class CheckService:
    def __init__(self, guards: Guards, policy: Policy, settings: ModerationSettings) -> None:
        self._guards = guards
        self._policy = policy
        self._settings = settings

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
        inputs = [guard.prepare(c.messages, p) for c, p in zip(request.checks, params, strict=True)]
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
            )
            for d in decisions
        ]
        return GuardCheckResponse(id=f"gchk-{uuid.uuid4().hex}", model=guard.model, results=results)
