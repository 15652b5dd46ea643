"""Wire models of OpenAI's `POST /v1/moderations` (the openai package's types where they exist)."""

from __future__ import annotations

from typing import Literal

from openai.types import ModerationCreateResponse
from pydantic import BaseModel, ConfigDict

from guard_gateway.openai_moderation import ModerationResult


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ImageURL(BaseModel):
    url: str


class ImageURLPart(BaseModel):
    type: Literal["image_url"]
    image_url: ImageURL


class ModerationRequest(BaseModel):
    # OpenAI documents no other fields; clients that add their own (metadata) are not refused for it.
    model_config = ConfigDict(extra="ignore")

    input: str | list[str] | list[TextPart | ImageURLPart]
    model: str | None = None


class ModerationResponse(ModerationCreateResponse):
    results: list[ModerationResult]  # type: ignore[assignment]
