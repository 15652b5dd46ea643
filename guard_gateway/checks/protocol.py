"""Wire models of the native `POST /v1/guard/checks`: conversations in, typed verdicts out."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from guard_client import Category, FailurePolicy, GuardMode, Safety, Scores
from guard_gateway.policy import Action


class Conversation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: list[dict[str, Any]] = Field(
        description="OpenAI chat messages, shown to the guard as docs/conversation-view.md says; a last assistant "
        "turn is checked as a response, any other as a prompt"
    )


class GuardCheckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checks: list[Conversation]
    model: str | None = None


class GuardCheckResult(BaseModel):
    mode: GuardMode
    safety: Safety | None = Field(description="None when the guard did not decide (see error and policy)")
    categories: list[Category | str] = Field(description="the model's own categories, or a custom policy's labels")
    refusal: bool | None = Field(description="response mode: whether the answer refuses")
    scores: Scores | None
    flagged: bool = Field(description="the verdict under the configured strictness")
    action: Action = Field(description="what the gateway's policy does with it: allow, annotate or block")
    error: str | None = None
    policy: FailurePolicy | None = Field(default=None, description="set when the guard did not decide")
    unread: list[str] = Field(
        default_factory=list, description="non-text parts passed unread (conversation.non_text: pass_annotated)"
    )


class GuardCheckResponse(BaseModel):
    id: str
    model: str
    results: list[GuardCheckResult]
