"""The load test's gateway request types, apart from locust so they can be tested without it.

Beside the direct guard checks, a user may send, through the gateway (`--gateway-url`):
- `moderation (gateway)`: `POST /v1/moderations`, one input; the answer must parse as the openai SDK's
  `ModerationCreateResponse` with one result carrying the gateway's `qwen3guard` verdict.
- `chat (gateway)` and `chat (gateway, stream)`: `POST /v1/chat/completions` through the guarded proxy;
  the answer must parse as a `ChatCompletion` (streams: every event a `ChatCompletionChunk`, then
  `[DONE]`). A documented block (HTTP 400 `content_filter`, or `finish_reason: "content_filter"`) is a
  success recorded under its own name (`... blocked`), since its latency is not a completion's.
Anything else, an unreadable answer included, is a failure whose reason starts with `FORMAT_FAILURE`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any, TypeVar

from openai.types import ModerationCreateResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel, ValidationError

from loadtest.summary import FORMAT_FAILURE

MODERATION = "moderation (gateway)"
CHAT = "chat (gateway)"
CHAT_STREAM = "chat (gateway, stream)"
BLOCKED = " blocked"
DIRECT = "direct"
Body = TypeVar("Body", bound=BaseModel)


@dataclass(frozen=True)
class Outcome:
    """How one gateway answer is judged: `error` None is a success, `blocked` a documented block."""

    error: str | None = None
    blocked: bool = False


def _format(reason: str) -> Outcome:
    return Outcome(error=f"{FORMAT_FAILURE}: {reason}")


@dataclass(frozen=True)
class GatewayMix:
    """Which request type a user sends next: moderation, chat (streamed or not) or the direct check."""

    moderation_share: float = 0.0
    chat_share: float = 0.0
    chat_stream_share: float = 0.5

    def __post_init__(self) -> None:
        shares = (self.moderation_share, self.chat_share, self.chat_stream_share)
        if any(not 0.0 <= share <= 1.0 for share in shares):
            raise ValueError("the gateway shares must lie between 0 and 1")
        if self.moderation_share + self.chat_share > 1.0:
            raise ValueError("the moderation share and the chat share add up to more than 1")

    @property
    def uses_gateway(self) -> bool:
        return self.moderation_share > 0 or self.chat_share > 0

    def draw(self, rng: random.Random) -> str:
        """MODERATION, CHAT, CHAT_STREAM or DIRECT (the guard check of the original mix)."""
        r = rng.random()
        if r < self.moderation_share:
            return MODERATION
        if r < self.moderation_share + self.chat_share:
            return CHAT_STREAM if rng.random() < self.chat_stream_share else CHAT
        return DIRECT


def moderation_body(text: str, model: str) -> dict[str, Any]:
    return {"model": model, "input": text}


def chat_body(text: str, model: str, stream: bool, max_tokens: int) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], "stream": stream, "max_tokens": max_tokens}


def _blocked_before_the_answer(status: int, text: str) -> Outcome | None:
    """HTTP 400 content_filter in OpenAI's envelope: the documented input block."""
    if status != 400:
        return None
    try:
        error = json.loads(text)["error"]
    except (ValueError, KeyError, TypeError):
        return _format("HTTP 400 without OpenAI's error envelope")
    return Outcome(blocked=True) if isinstance(error, dict) and error.get("code") == "content_filter" else None


def _validated(model: type[Body], status: int, text: str) -> Body | Outcome:
    """The answer as `model`, or the outcome of a failed request or of an answer in another shape."""
    if status != 200:
        return Outcome(error=f"HTTP {status}")
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        return _format(f"not a {model.__name__} ({exc.error_count()} errors)")


def judge_moderation(status: int, text: str) -> Outcome:
    parsed = _validated(ModerationCreateResponse, status, text)
    if isinstance(parsed, Outcome):
        return parsed
    if len(parsed.results) != 1:
        return _format(f"{len(parsed.results)} results for one input")
    verdict = (parsed.results[0].model_extra or {}).get("qwen3guard")
    if not isinstance(verdict, dict):
        return _format("a result without its qwen3guard verdict")
    if verdict.get("error"):  # the guard did not decide (fail open): never a verdict
        return Outcome(error=f"guard undecided: {verdict['error']}")
    return Outcome()


def judge_chat(status: int, text: str) -> Outcome:
    blocked = _blocked_before_the_answer(status, text)
    if blocked is not None:
        return blocked
    completion = _validated(ChatCompletion, status, text)
    if isinstance(completion, Outcome):
        return completion
    if not completion.choices:
        return _format("a completion without choices")
    return Outcome(blocked=any(c.finish_reason == "content_filter" for c in completion.choices))


def judge_chat_stream(status: int, lines: list[str]) -> Outcome:
    """A stream's `data:` lines in order (status and body of a refusal before any event included)."""
    if status != 200:
        refused = _blocked_before_the_answer(status, "\n".join(lines))
        return refused if refused is not None else Outcome(error=f"HTTP {status}")
    events = [line[5:].strip() for line in lines if line.startswith("data:")]
    if not events or events[-1] != "[DONE]":
        return _format("the stream did not end with [DONE]")
    blocked = False
    for event in events[:-1]:
        try:
            payload = json.loads(event)
        except ValueError:
            return _format("an event that is not JSON")
        if isinstance(payload, dict) and "error" in payload:
            return Outcome(error=f"error event: {str(payload['error'])[:200]}")
        try:
            chunk = ChatCompletionChunk.model_validate(payload)
        except ValidationError as exc:
            return _format(f"not a ChatCompletionChunk ({exc.error_count()} errors)")
        blocked = blocked or any(c.finish_reason == "content_filter" for c in chunk.choices)
    return Outcome(blocked=blocked)
