"""`/v1/moderations`: one result per input, in order, the inputs of a request checked concurrently."""

from __future__ import annotations

import uuid

from guard_client import GuardInput, to_openai_moderation
from guard_gateway.config import ModerationSettings
from guard_gateway.errors import InvalidRequest
from guard_gateway.guard import Guard, Guards
from guard_gateway.moderations.protocol import ImageURLPart, ModerationRequest, ModerationResponse, TextPart
from guard_gateway.policy import Policy

ENDPOINT = "moderations"


class ModerationService:
    def __init__(self, guards: Guards, policy: Policy, settings: ModerationSettings) -> None:
        self._guards = guards
        self._policy = policy
        self._settings = settings

    def _inputs(self, request: ModerationRequest, guard: Guard) -> tuple[list[GuardInput], list[str]]:
        raw = request.input
        if isinstance(raw, str):
            return [guard.prepare([{"role": "user", "content": raw}], "input")], ["input"]
        if not raw:
            raise InvalidRequest("'input' must not be an empty array", param="input")
        if all(isinstance(item, TextPart | ImageURLPart) for item in raw):
            # An array of parts is one multi-modal input, as OpenAI reads it: one result.
            for index, part in enumerate(raw):
                if isinstance(part, ImageURLPart):
                    raise InvalidRequest(
                        f"'input[{index}]' is an image part; this guard reads text only", param="input"
                    )
            parts = [{"type": "text", "text": part.text} for part in raw if isinstance(part, TextPart)]
            return [guard.prepare([{"role": "user", "content": parts}], "input")], ["input"]
        if len(raw) > self._settings.max_inputs:
            raise InvalidRequest(
                f"'input' has {len(raw)} items, more than the {self._settings.max_inputs} allowed per request",
                param="input",
            )
        params = [f"input[{index}]" for index in range(len(raw))]
        texts = [item for item in raw if isinstance(item, str)]
        return [guard.prepare([{"role": "user", "content": t}], p) for t, p in zip(texts, params, strict=True)], params

    async def create(self, request: ModerationRequest) -> ModerationResponse:
        guard = self._guards.pick(request.model)
        inputs, params = self._inputs(request, guard)
        verdicts = await guard.check(inputs, ENDPOINT, params)
        self._policy.decide_all(verdicts, ENDPOINT)  # 503 when the guard failed and the policy fails closed
        results = [to_openai_moderation(verdict, self._policy.strictness) for verdict in verdicts]
        return ModerationResponse(id=f"modr-{uuid.uuid4().hex}", model=guard.model, results=results)
