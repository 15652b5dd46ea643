"""`GET /health` (the process answers), `GET /ready` (every guard model answers), `GET /metrics`
(Prometheus). None needs a key (see `auth`)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from guard_gateway.state import gateway_state

router = APIRouter()


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    readiness = await gateway_state(request).guards.readiness()
    return JSONResponse(
        {"status": "ready" if readiness.ready else "not_ready", "detail": readiness.detail},
        status_code=200 if readiness.ready else 503,
    )


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    return Response(generate_latest(gateway_state(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)
