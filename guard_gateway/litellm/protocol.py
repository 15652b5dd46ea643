"""Wire models of LiteLLM's generic guardrail API (`guardrail: generic_guardrail_api`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: LiteLLM's wire values, typed as openai-python types its wire enums.
InputType = Literal["request", "response"]
GuardrailAction = Literal["BLOCKED", "NONE", "GUARDRAIL_INTERVENED"]


class GuardrailRequest(BaseModel):
    # LiteLLM sends more context (request_data, request_headers, ids, tools); only these are read.
    model_config = ConfigDict(extra="ignore")

    input_type: InputType
    texts: list[str] = Field(default_factory=list)
    structured_messages: list[dict[str, Any]] | None = None
    #: The answer's tool calls (input_type response), checked with its texts.
    tool_calls: list[dict[str, Any]] | None = None
    images: list[Any] | None = None
    model: str | None = None


class GuardrailResponse(BaseModel):
    action: GuardrailAction
    blocked_reason: str | None = None
    texts: list[str] | None = None
