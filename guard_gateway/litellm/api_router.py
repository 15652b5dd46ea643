from __future__ import annotations

from fastapi import APIRouter, Request

from guard_gateway.litellm.protocol import GuardrailRequest, GuardrailResponse
from guard_gateway.state import gateway_state

router = APIRouter()


@router.post("/beta/litellm_basic_guardrail_api", response_model=GuardrailResponse, response_model_exclude_none=True)
async def litellm_guardrail(body: GuardrailRequest, request: Request) -> GuardrailResponse:
    return await gateway_state(request).litellm.apply(body)
