"""`POST /v1/chat/completions` with input and output rails around the main LLM.

Input rail: the conversation as `guard_client.conversation` shows it (`ConversationView.input_checks`),
`pre_call` (check, then call) or `parallel` (call and check together; nothing is released before the
verdict; a block or a guard failure under fail_closed closes the upstream request so its tokens are not
spent). In `parallel`, a stream's
output rail also starts on the first text while the input check still runs, so a stream's first token
waits on one check, not two in a row; the stream still sends nothing before the input verdict. A block is HTTP 400 as
Azure OpenAI sends it, also for `stream: true` (plain JSON, before any event).

Output rail, whole answers: each choice's answer (content, refusal, tool-call arguments) with response
moderation of the conversation plus that answer. A blocked choice keeps HTTP 200, gets
`finish_reason: "content_filter"`, loses its content, and carries `content_filter_results` and `qwen3guard`.
Streams: `streaming.StreamRail`.

The upstream's own errors pass through with its status and body. The request body is forwarded as the
client sent it: the rails read `messages`, `stream` and `n` and nothing else.

`ChatService.create` returns what to answer (`WholeAnswer`, `UpstreamAnswer` or `StreamedAnswer`, the SSE frames
as an async iterator); the router turns it into HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from guard_client import SESSION_HEADER
from guard_client.conversation import ConversationView, NonText
from guard_gateway.chat.protocol import (
    ChatRails,
    ContentFiltered,
    annotates,
    filter_results,
    header_value,
    qwen3guard,
)
from guard_gateway.chat.settings import ChatSettings, InputMode
from guard_gateway.chat.streaming import StreamRail, sse
from guard_gateway.chat.upstream import Upstream, UpstreamError, read_body, returned_headers
from guard_gateway.errors import InvalidRequest
from guard_gateway.guard import Guard, affinity_key, answer_of, view_of
from guard_gateway.policy import Decision, Policy

INPUT = "chat_input"
OUTPUT = "chat_output"
PATH = "/chat/completions"


@dataclass(frozen=True)
class WholeAnswer:
    """A whole chat completion after the output rail: the upstream's JSON with the rails' annotations."""

    answer: dict[str, Any]
    headers: dict[str, str]


@dataclass(frozen=True)
class UpstreamAnswer:
    """The upstream's own answer other than 200, status and body as it sent them (its errors are its own, not
    the guard's)."""

    status_code: int
    content: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class StreamedAnswer:
    """A stream whose first frame passed the rails: the SSE frames to send as they come, and `aclose`, which
    ends the stream (the upstream request and pending checks) whether or not the frames were all read."""

    frames: AsyncIterator[bytes]
    headers: dict[str, str]
    aclose: Callable[[], Awaitable[None]]


ChatAnswer = WholeAnswer | UpstreamAnswer | StreamedAnswer


class _Timer:
    def __init__(self) -> None:
        self.ms = 0.0


class ChatService:
    def __init__(
        self, guard: Guard, policy: Policy, settings: ChatSettings, upstream: Upstream, non_text: NonText
    ) -> None:
        self._guard = guard
        self._policy = policy
        self.settings = settings
        self.upstream = upstream
        self._non_text = non_text

    async def _decide(
        self, checks: Sequence[tuple[Sequence[Mapping[str, str]], str]], endpoint: str, session: str
    ) -> list[Decision]:
        inputs = [self._guard.prepare(messages, param) for messages, param in checks]
        verdicts = await self._guard.check(inputs, endpoint, [param for _, param in checks], session)
        return self._policy.decide_all(verdicts, endpoint)  # GuardUnavailable under fail_closed

    async def _input_rail(self, view: ConversationView, session: str, timer: _Timer) -> list[Decision]:
        started = time.perf_counter()
        try:
            decisions = await self._decide([(check, "messages") for check in view.input_checks()], INPUT, session)
        finally:
            timer.ms += (time.perf_counter() - started) * 1000
        if any(decision.blocked for decision in decisions):
            raise ContentFiltered(decisions, self._policy.strictness)
        return decisions

    def _prompt_annotation(self, decisions: Sequence[Decision], view: ConversationView) -> dict[str, Any] | None:
        """Azure's `prompt_filter_results` when the input is annotated: monitor mode, fail open, or parts
        the guard could not read (passed by `conversation.non_text: pass_annotated`)."""
        if not annotates(decisions) and not view.unread:
            return None
        results = filter_results(decisions)
        if view.unread:
            results["error"] = _unread_error(view.unread)
        entry: dict[str, Any] = {"prompt_index": 0, "content_filter_results": results}
        entry["qwen3guard"] = qwen3guard(decisions, self._policy.strictness)
        return entry

    async def create(self, raw: bytes, incoming: Mapping[str, str]) -> ChatAnswer:
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InvalidRequest("We could not parse the JSON body of your request") from None
        rails = ChatRails.read(body)
        view = view_of(rails.messages, "messages", self._non_text)
        headers = self.upstream.headers(incoming)
        # Every check of this conversation (input, whole answer, each stream window) carries one key.
        session = affinity_key(view.messages, incoming.get(SESSION_HEADER.lower()))
        timer = _Timer()
        call: asyncio.Future[httpx.Response] | None = None
        checking: asyncio.Future[list[Decision]] | None = None
        try:
            if self.settings.input_mode is InputMode.PARALLEL:
                # The upstream call is scheduled first: its request leaves before the input check's rendering
                # and guard request take their turn on the event loop.
                call = asyncio.ensure_future(self.upstream.open("POST", PATH, headers, raw))
                checking = asyncio.ensure_future(self._input_rail(view, session, timer))
                # A verdict that comes first and refuses ends the wait (and the call) at once.
                await asyncio.wait((call, checking), return_when=asyncio.FIRST_COMPLETED)
                if checking.done():
                    checking.result()
            else:
                checking = asyncio.ensure_future(self._input_rail(view, session, timer))
                await checking
                call = asyncio.ensure_future(self.upstream.open("POST", PATH, headers, raw))
            response = await call
            streamed = (
                response.status_code == 200
                and rails.stream
                and response.headers.get("content-type", "").startswith("text/event-stream")
            )
            if streamed:
                return await self._stream(response, view, session, checking, timer)
            decisions = await checking
        except BaseException:
            await _abandon(call)
            await _abandon(checking)
            raise
        guard_headers = {"x-guard-input": header_value(decisions), "x-guard-ms": f"{timer.ms:.1f}"}
        if response.status_code != 200:
            content = await read_body(response)
            headers = {**returned_headers(response), **guard_headers, "x-guard-output": "none"}
            return UpstreamAnswer(response.status_code, content, headers)
        annotation = self._prompt_annotation(decisions, view)
        return await self._whole(response, view, session, annotation, guard_headers, timer)

    def _answer(self, message: Any, param: str) -> tuple[str, tuple[str, ...]]:
        """An upstream answer's text as the guard reads it and the parts it passed unread; a part it cannot
        read is refused (422 naming it) under `conversation.non_text: refuse`, as a request's would be."""
        answer = answer_of(message if isinstance(message, Mapping) else {}, param, self._non_text)
        return answer.messages[0]["content"], answer.unread

    async def _whole(
        self,
        response: httpx.Response,
        view: ConversationView,
        session: str,
        prompt_annotation: dict[str, Any] | None,
        guard_headers: dict[str, str],
        timer: _Timer,
    ) -> WholeAnswer:
        raw = await read_body(response)
        try:
            answer = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UpstreamError("The upstream LLM's answer is not JSON", code="upstream_bad_response") from None
        choices = answer.get("choices") if isinstance(answer, dict) else None
        if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
            raise UpstreamError("The upstream LLM's answer is not a chat completion", code="upstream_bad_response")
        answers = [
            self._answer(choice.get("message"), f"choices[{index}].message") for index, choice in enumerate(choices)
        ]
        checks = [(view.with_answer(text), f"choices[{index}]") for index, (text, _) in enumerate(answers)]
        started = time.perf_counter()
        decisions = await self._decide(checks, OUTPUT, session) if checks else []
        timer.ms += (time.perf_counter() - started) * 1000
        for choice, decision, (_, unread) in zip(choices, decisions, answers, strict=True):
            if decision.blocked:
                choice["message"] = {"role": "assistant", "content": None}
                choice["finish_reason"] = "content_filter"
                choice.pop("logprobs", None)
            if decision.blocked or annotates([decision]) or unread:
                choice["content_filter_results"] = filter_results([decision])
                choice["qwen3guard"] = qwen3guard([decision], self._policy.strictness)
            if unread and not decision.blocked:
                choice["content_filter_results"]["error"] = _unread_error(unread)
        if prompt_annotation is not None:
            answer["prompt_filter_results"] = [prompt_annotation]
        headers = {
            **returned_headers(response),
            **guard_headers,
            "x-guard-output": header_value(decisions),
            "x-guard-ms": f"{timer.ms:.1f}",
        }
        headers.pop("content-type", None)
        return WholeAnswer(answer, headers)

    async def _stream(
        self,
        response: httpx.Response,
        view: ConversationView,
        session: str,
        checking: asyncio.Future[list[Decision]],
        timer: _Timer,
    ) -> StreamedAnswer:
        async def check(answers: Sequence[tuple[int, str]]) -> list[Decision]:
            checks = [(view.with_answer(text), f"choices[{i}]") for i, text in answers]
            return await self._decide(checks, OUTPUT, session)

        async def opening() -> bytes:
            return _prompt_chunk(self._prompt_annotation(await checking, view))

        rail = StreamRail(
            response,
            check,
            self.settings.stream_mode,
            self.settings.window_chars,
            self._policy.strictness,
            opening=opening(),
        )
        frames = rail.frames()
        try:
            # Run to the first release, which comes after the input verdict: an input block is still a 400
            # and a guard failure (fail closed) before it still a 503.
            first = await anext(frames)
        except BaseException:
            await frames.aclose()
            raise
        decisions = checking.result()
        guard_headers = {"x-guard-input": header_value(decisions), "x-guard-ms": f"{timer.ms:.1f}"}

        async def body() -> AsyncIterator[bytes]:
            yield first
            async for frame in frames:
                yield frame

        headers = {
            **guard_headers,
            "x-guard-output": f"in-stream; mode={self.settings.stream_mode.value}",
            "cache-control": "no-cache",
        }
        return StreamedAnswer(body(), headers, frames.aclose)


async def _abandon(task: asyncio.Future[Any] | None) -> None:
    """Cancel an upstream call or check nobody will read, or close the call's response if it already came."""
    if task is None:
        return
    if not task.done():
        task.cancel()
    with contextlib.suppress(BaseException):
        result = await task
        if isinstance(result, httpx.Response):
            await result.aclose()


def _unread_error(unread: Sequence[str]) -> dict[str, str]:
    """Azure's content_filter_error for the parts the guard passed unread."""
    return {"code": "content_filter_error", "message": "Not filtered (the guard reads text only): " + ", ".join(unread)}


def _prompt_chunk(annotation: dict[str, Any] | None) -> bytes:
    """Azure's first stream chunk carrying the prompt annotation (`choices: []`), or nothing. Like Azure's,
    it has an empty id and model and `created: 0`, so it is a valid chunk to clients that validate them."""
    if annotation is None:
        return b""
    chunk = {"id": "", "object": "chat.completion.chunk", "created": 0, "model": "", "choices": []}
    return sse({**chunk, "prompt_filter_results": [annotation]})
