"""Test double of the main LLM behind the chat proxy, public as httpx ships `MockTransport`: `FakeUpstream`, a
scripted fake of an OpenAI-compatible chat completions server (an `httpx.MockTransport` handler): whole
answers and SSE streams, word by word, with delays, errors, a stream that dies, and a record of whether each
request was cancelled or closed early. `guard_client.testing.served_over_http` puts it behind a real socket.

Imported on demand (`import guard_gateway` does not load it).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["FakeUpstream"]


@dataclass
class FakeUpstream:
    #: The answer of each choice (n > 1 repeats the last one).
    answers: list[str] = field(default_factory=lambda: ["Hello there, how can I help?"])
    #: Seconds before the answer (or the first stream chunk).
    delay: float = 0.0
    #: Seconds between stream chunks (one word each): 0.02 is 50 tokens/s.
    token_interval: float = 0.0
    #: An error answer (status, body) instead of a completion.
    error: tuple[int, dict[str, Any]] | None = None
    #: Break the stream after this many words.
    die_after: int | None = None
    #: Tool calls of the first choice (name, arguments), streamed after the content.
    tool_call: tuple[str, str] | None = None
    #: Refuse connections (an upstream that is down).
    refuse: bool = False
    requests: list[httpx.Request] = field(default_factory=list)
    #: Requests whose answer was cancelled before it came, or closed before it was read to its end.
    abandoned: int = 0
    finished: int = 0

    def body(self, index: int) -> dict[str, Any]:
        return dict(json.loads(self.requests[index].content))

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.refuse:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"object": "list", "data": [{"id": "main-llm", "object": "model"}]})
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.abandoned += 1
            raise
        if self.error is not None:
            return httpx.Response(self.error[0], json=self.error[1])
        body = json.loads(request.content)
        n = int(body.get("n") or 1)
        answers = [self.answers[min(i, len(self.answers) - 1)] for i in range(n)]
        if body.get("stream"):
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=_Stream(self, answers))
        self.finished += 1
        choices = []
        for i, text in enumerate(answers):
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if self.tool_call and i == 0:
                name, args = self.tool_call
                message["tool_calls"] = [
                    {"id": "call_1", "type": "function", "function": {"name": name, "arguments": args}}
                ]
            choices.append({"index": i, "message": message, "finish_reason": "stop", "logprobs": None})
        return httpx.Response(200, json=_completion(choices, "chat.completion"))


def _completion(choices: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return {"id": "chatcmpl-fake", "object": kind, "created": int(time.time()), "model": "main-llm", "choices": choices}


def _frame(choices: list[dict[str, Any]]) -> bytes:
    return b"data: " + json.dumps(_completion(choices, "chat.completion.chunk")).encode() + b"\n\n"


class _Stream(httpx.AsyncByteStream):
    def __init__(self, fake: FakeUpstream, answers: list[str]) -> None:
        self.fake = fake
        self.answers = answers
        self.done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        fake = self.fake
        yield _frame([{"index": i, "delta": {"role": "assistant", "content": ""}} for i in range(len(self.answers))])
        words = [text.split(" ") for text in self.answers]
        for step in range(max(len(w) for w in words)):
            if fake.die_after is not None and step >= fake.die_after:
                raise httpx.ReadError("upstream connection reset")
            await asyncio.sleep(fake.token_interval)
            deltas = [
                {"index": i, "delta": {"content": (" " if step else "") + w[step]}}
                for i, w in enumerate(words)
                if step < len(w)
            ]
            yield _frame(deltas)
        if fake.tool_call:
            name, args = fake.tool_call
            call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": name, "arguments": ""}}
            yield _frame([{"index": 0, "delta": {"tool_calls": [call]}}])
            for piece in (args[: len(args) // 2], args[len(args) // 2 :]):
                yield _frame([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}}])
        yield _frame([{"index": i, "delta": {}, "finish_reason": "stop"} for i in range(len(self.answers))])
        yield b"data: [DONE]\n\n"
        self.done = True
        fake.finished += 1

    async def aclose(self) -> None:
        if not self.done:
            self.fake.abandoned += 1
            self.done = True
