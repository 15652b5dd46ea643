"""What one gateway app holds: its configuration and the services its routes call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from starlette.requests import Request

from guard_gateway.chat.serving import ChatService
from guard_gateway.checks.serving import CheckService
from guard_gateway.config import GatewayConfig
from guard_gateway.guard import Guards
from guard_gateway.litellm.serving import GuardrailService
from guard_gateway.metrics import GatewayMetrics
from guard_gateway.moderations.serving import ModerationService
from guard_gateway.policy import Policy


@dataclass
class GatewayState:
    config: GatewayConfig
    metrics: GatewayMetrics
    #: The guard models by served name; `guards.default` is the base guard.
    guards: Guards
    policy: Policy
    moderations: ModerationService
    checks: CheckService
    litellm: GuardrailService
    chat: ChatService
    #: Client bearer keys; empty: no authentication.
    api_keys: frozenset[str]


def gateway_state(request: Request) -> GatewayState:
    return cast(GatewayState, request.app.state.gateway)
