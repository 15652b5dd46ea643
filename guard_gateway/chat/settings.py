"""The `chat:` section of the gateway's configuration (the upstream itself is the `upstream:` section)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class InputMode(StrEnum):
    #: Check the conversation, then call the main LLM.
    PRE_CALL = "pre_call"
    #: Call the main LLM and check together; release nothing until the verdict; a block cancels the call.
    PARALLEL = "parallel"


class StreamMode(StrEnum):
    #: Hold upstream chunks until the answer up to them passed a check (nothing unchecked is released).
    HOLD_BACK = "hold_back"
    #: Release at once and check behind: a block may follow up to one window of released text.
    STREAM_FIRST = "stream_first"
    #: Hold the whole answer and check it once at the end.
    END_ONLY = "end_only"


class ChatSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    input_mode: InputMode = Field(default=InputMode.PARALLEL, description="pre_call or parallel (the input check)")
    stream_mode: StreamMode = Field(default=StreamMode.HOLD_BACK, description="hold_back, stream_first or end_only")
    window_chars: int = Field(
        default=256, ge=1, description="new answer text (characters) between two checks of a stream"
    )
    overlap_chars: int | None = Field(
        default=None,
        ge=0,
        description="none: every check sees the whole answer so far (prefix-cached); n: only the new window "
        "and n characters before it",
    )
    passthrough_routes: tuple[str, ...] = Field(
        default=(), description="paths proxied to the upstream unguarded (e.g. /v1/embeddings); others are 404"
    )
    upstream_timeout: float = Field(default=600.0, gt=0, description="seconds to wait for the main LLM")
