"""`create_app(config)`: the gateway's ASGI app.

Routers are registered from two lists: `OPEN_ROUTERS` (no key) and `PROTECTED_ROUTERS` (a bearer
key when keys are configured). A new endpoint adds its router to one of them and its service to
`GatewayState`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute

from guard_gateway.auth import require_key
from guard_gateway.cache import VerdictCache
from guard_gateway.chat.api_router import proxy
from guard_gateway.chat.api_router import router as chat_router
from guard_gateway.chat.serving import ChatService
from guard_gateway.chat.upstream import Upstream
from guard_gateway.checks.api_router import router as checks_router
from guard_gateway.checks.serving import CheckService
from guard_gateway.config import GatewayConfig, GuardSettings
from guard_gateway.errors import ErrorResponse, install_error_handlers
from guard_gateway.guard import Guard, Guards
from guard_gateway.litellm.api_router import router as litellm_router
from guard_gateway.litellm.serving import GuardrailService
from guard_gateway.metrics import GatewayMetrics
from guard_gateway.middleware import AdmissionLimitMiddleware, BodyLimitMiddleware, ObservabilityMiddleware
from guard_gateway.moderations.api_router import router as moderations_router
from guard_gateway.moderations.serving import ModerationService
from guard_gateway.operations import router as operations_router
from guard_gateway.policy import Policy
from guard_gateway.state import GatewayState

OPEN_ROUTERS: list[APIRouter] = [operations_router]
PROTECTED_ROUTERS: list[APIRouter] = [moderations_router, checks_router, litellm_router, chat_router]
#: The errors every protected route may answer, in OpenAI's envelope (documented in the OpenAPI schema).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "invalid request (names the parameter)",
        401: "missing or wrong API key",
        404: "unknown model or route",
        413: "request body over limits.max_body_bytes",
        429: "over limits.max_in_flight; Retry-After",
        503: "the guard could not decide and the policy fails closed; Retry-After",
    }.items()
}


def build_state(
    config: GatewayConfig,
    guard_transport: httpx.AsyncBaseTransport | None = None,
    upstream_transport: httpx.AsyncBaseTransport | None = None,
) -> GatewayState:
    metrics = GatewayMetrics()
    cache = VerdictCache(config.cache.max_entries, config.cache.ttl_seconds) if config.cache.enabled else None

    def guard(settings: GuardSettings) -> Guard:
        return Guard(
            settings,
            config.policy.on_guard_failure,
            metrics,
            cache,
            transport=guard_transport,
            log_checked_text=config.logging.log_checked_text,
        )

    models = {
        name: guard(
            config.guard.model_copy(
                update={"model": name, "url": entry.url or config.guard.url, "policy": entry.policy}
            )
        )
        for name, entry in config.models.items()
    }
    guards = Guards(guard(config.guard), models, config.moderations.model_aliases)
    policy = Policy(config.policy, metrics)
    api_keys = config.auth.keys()
    upstream = Upstream(config.upstream, config.chat.upstream_timeout, bool(api_keys), upstream_transport)
    return GatewayState(
        config=config,
        metrics=metrics,
        guards=guards,
        policy=policy,
        moderations=ModerationService(guards, policy, config.moderations),
        checks=CheckService(guards, policy, config.moderations),
        litellm=GuardrailService(guards, policy),
        chat=ChatService(guards.default, policy, config.chat, upstream),
        api_keys=api_keys,
    )


def create_app(
    config: GatewayConfig,
    *,
    guard_transport: httpx.AsyncBaseTransport | None = None,
    upstream_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The gateway for `config`; the transports replace the HTTP transport to the guard and to the
    upstream LLM (tests)."""
    state = build_state(config, guard_transport, upstream_transport)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await state.guards.aclose()
        await state.chat.upstream.aclose()

    app = FastAPI(
        title="Qwen3Guard gateway",
        summary="OpenAI-compatible moderation in front of Qwen3Guard-Gen",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.gateway = state
    for router in OPEN_ROUTERS:
        app.include_router(router)
    # Keys are read once, at start: with none configured there is nothing to solve on every request.
    key_check = [Depends(require_key)] if state.api_keys else []
    for router in PROTECTED_ROUTERS:
        app.include_router(router, dependencies=key_check, responses=ERROR_RESPONSES)
    for path in config.chat.passthrough_routes:  # unguarded by explicit configuration only
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        app.add_api_route(path, proxy, methods=methods, dependencies=key_check, include_in_schema=False)
    install_error_handlers(app)
    routes = [route.path for route in app.routes if isinstance(route, APIRoute)]
    exempt = [route.path for router in OPEN_ROUTERS for route in router.routes if isinstance(route, APIRoute)]
    if app.openapi_url:
        exempt.append(app.openapi_url)
    # Innermost first: the log and gauge see every request, including those refused for load or size.
    app.add_middleware(
        AdmissionLimitMiddleware,
        max_in_flight=config.limits.max_in_flight,
        retry_after=config.limits.retry_after_seconds,
        exempt=exempt,
        metrics=state.metrics,
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.limits.max_body_bytes)
    app.add_middleware(ObservabilityMiddleware, metrics=state.metrics, routes=routes, access=config.logging.access_log)
    logging.getLogger("guard_gateway").setLevel(config.logging.level.upper())
    return app
