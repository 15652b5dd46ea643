from __future__ import annotations

from fastapi import APIRouter, Request

from guard_gateway.checks.protocol import GuardCheckRequest, GuardCheckResponse
from guard_gateway.state import gateway_state

router = APIRouter()


@router.post("/v1/guard/checks", response_model=GuardCheckResponse)
async def create_checks(body: GuardCheckRequest, request: Request) -> GuardCheckResponse:
    return await gateway_state(request).checks.create(body)
