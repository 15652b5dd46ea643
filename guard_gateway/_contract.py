"""The guard_client API of issue #10 that the gateway is written against, in one place.

Until that contract is on main, this module bridges the gap with the client as it is; on rebase it
shrinks to re-exports from `guard_client` (and the bridge below is deleted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from openai.types import Moderation
from pydantic import ConfigDict

from guard_client import AsyncGuardClient, GuardInputError, GuardMode, Strictness, Verdict, render_guard_prompt
from guard_client import to_openai_moderation as _client_moderation
from guard_client._core import normalize_messages  # bridge only: public as prepare_input after #10
from guard_client._template import guard_mode  # bridge only


@dataclass(frozen=True)
class GuardInput:
    messages: list[dict[str, str]]
    mode: GuardMode
    prompt: str


def prepare_input(messages: Sequence[Any]) -> GuardInput:
    normalized = normalize_messages(messages)
    return GuardInput(normalized, guard_mode(normalized), render_guard_prompt(normalized))


class _BridgeVerdict(Verdict):
    error_type: str | None = None


def error_type(verdict: Verdict) -> str | None:
    """The GuardError subclass name of an undecided verdict (`Verdict.error_type` after #10)."""
    return getattr(verdict, "error_type", None) if not verdict.decided else None


async def check_many(client: AsyncGuardClient, inputs: Sequence[GuardInput], **options: Any) -> list[Verdict]:
    """One Verdict per input, never an exception (the #10 contract of `check_many`)."""
    results = await client.check_many([i.messages for i in inputs], **options)
    out: list[Verdict] = []
    for item, result in zip(inputs, results, strict=True):
        if isinstance(result, Verdict):
            if not result.decided:
                # The client's policy turned an error into this verdict; its kind is lost before #10.
                result = _BridgeVerdict(**result.model_dump(), error_type="GuardError")
            out.append(result)
        else:
            policy = client._core.on_error  # bridge only
            kind = type(result).__name__
            out.append(_BridgeVerdict(mode=item.mode, safety=None, error=str(result), policy=policy, error_type=kind))
    return out


class ModerationResult(Moderation):
    """One `/v1/moderations` result with the `qwen3guard` extension object."""

    model_config = ConfigDict(extra="allow")
    qwen3guard: dict[str, Any]


def to_openai_moderation(verdict: Verdict, strictness: Strictness = Strictness.STRICT) -> ModerationResult:
    wire = _client_moderation(verdict, strictness)
    wire["qwen3guard"]["policy"] = verdict.policy.value if verdict.policy else None
    wire["qwen3guard"]["unmapped_labels"] = []
    return ModerationResult.model_validate(wire)


__all__ = ["GuardInput", "GuardInputError", "ModerationResult", "check_many", "error_type", "prepare_input"]
