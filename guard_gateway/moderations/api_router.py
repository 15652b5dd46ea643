from __future__ import annotations

from fastapi import APIRouter, Request

from guard_gateway.moderations.protocol import ModerationRequest, ModerationResponse
from guard_gateway.state import gateway_state

router = APIRouter()


@router.post("/v1/moderations", response_model=ModerationResponse, response_model_exclude_none=False)
async def create_moderation(body: ModerationRequest, request: Request) -> ModerationResponse:
    return await gateway_state(request).moderations.create(body)
