"""`/v1/moderations`: one result per input, in order, the inputs of a request checked concurrently."""

from __future__ import annotations

import uuid

from guard_client import GuardInput
from guard_gateway.config import ModerationSettings
from guard_gateway.errors import InvalidRequest, ModelNotFound
from guard_gateway.guard import Guard
from guard_gateway.moderations.protocol import ImageURLPart, ModerationRequest, ModerationResponse, TextPart
from guard_gateway.openai_moderation import to_openai_moderation
from guard_gateway.policy import Policy

ENDPOINT = "moderations"


def resolve_model(requested: str | None, served: str, aliases: tuple[str, ...]) -> str:
    """The guard's served name for a request's `model` (None, the served name, or an alias)."""
    if requested is None or requested == served or requested in aliases:
        return served
    raise ModelNotFound(requested, [served, *aliases])


class ModerationService:
    def __init__(self, guard: Guard, policy: Policy, settings: ModerationSettings) -> None:
        self._guard = guard
        self._policy = policy
        self._settings = settings

    def _inputs(self, request: ModerationRequest) -> tuple[list[GuardInput], list[str]]:
        raw = request.input
        if isinstance(raw, str):
            return [self._guard.prepare([{"role": "user", "content": raw}], "input")], ["input"]
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
            return [self._guard.prepare([{"role": "user", "content": parts}], "input")], ["input"]
        if len(raw) > self._settings.max_inputs:
            raise InvalidRequest(
                f"'input' has {len(raw)} items, more than the {self._settings.max_inputs} allowed per request",
                param="input",
            )
        params = [f"input[{index}]" for index in range(len(raw))]
        texts = [item for item in raw if isinstance(item, str)]
        return [
            self._guard.prepare([{"role": "user", "content": t}], p) for t, p in zip(texts, params, strict=True)
        ], params

    async def create(self, request: ModerationRequest) -> ModerationResponse:
        model = resolve_model(request.model, self._guard.model, self._settings.model_aliases)
        inputs, params = self._inputs(request)
        verdicts = await self._guard.check(inputs, ENDPOINT, params)
        self._policy.decide_all(verdicts, ENDPOINT)  # 503 when the guard failed and the policy fails closed
        results = [to_openai_moderation(verdict, self._policy.strictness) for verdict in verdicts]
        return ModerationResponse(id=f"modr-{uuid.uuid4().hex}", model=model, results=results)
