"""The output rail of a streamed answer: hold-back windows with pipelined checks.

Upstream SSE events are parsed as they arrive and held. A check of the conversation plus each changed
choice's answer so far starts as soon as the previous check finished and `window_chars` of new text
arrived (the first one at the first text, so the first token waits on one check only); when it passes,
every event up to the text it saw is released. Nothing at all, not even a block or an error event, is sent
before `opening` (the input rail's verdict, which `parallel` mode runs alongside) has passed: the output
rail starts on the first text without waiting for it, so the two checks overlap. While a check runs, the
stream keeps reading, so it waits on at most one check. The end of the stream is always checked before the
finish chunks and `[DONE]`. Each check's prompt extends the previous one, so vLLM's prefix cache makes a
re-check cost little more than the new text. A block ends the stream with a `finish_reason: "content_filter"`
chunk per unfinished choice, then `data: [DONE]`; held text is dropped, and the upstream request is closed.

`stream_first` releases at once and checks behind (a block can follow up to one window of released text);
`end_only` holds everything for one check at the end. Failures: the upstream dying mid-stream, or the guard
failing under fail_closed after something was released, end the stream with an error event in OpenAI's
envelope and `[DONE]`. Cancellation (a client that left) closes the upstream response and pending checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from guard_client.conversation import answer_text
from guard_gateway.chat.protocol import annotates, filter_results, qwen3guard
from guard_gateway.chat.settings import StreamMode
from guard_gateway.errors import GatewayError, GuardUnavailable
from guard_gateway.policy import Decision

DONE = b"data: [DONE]\n\n"
#: Checks the answers of the given choices (index -> answer text): one Decision per choice, in order.
CheckAnswers = Callable[[Sequence[tuple[int, str]]], Awaitable[list[Decision]]]


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


@dataclass
class _Choice:
    content: str = ""
    refusal: str = ""
    tools: dict[int, list[str]] = field(default_factory=dict)
    finished: bool = False  # its finish chunk was released
    checked: int = 0  # answer length at its last passed check
    annotation: list[Decision] = field(default_factory=list)

    def add(self, delta: dict[str, Any]) -> int:
        before = self.size()
        if isinstance(delta.get("content"), str):
            self.content += delta["content"]
        if isinstance(delta.get("refusal"), str):
            self.refusal += delta["refusal"]
        for call in delta.get("tool_calls") or []:
            if not isinstance(call, dict):
                continue
            slot = self.tools.setdefault(int(call.get("index") or 0), ["", ""])
            function = call.get("function") or {}
            slot[0] += function.get("name") or ""
            slot[1] += function.get("arguments") or ""
        return self.size() - before

    def size(self) -> int:
        return len(self.content) + len(self.refusal) + sum(len(a) + len(b) for a, b in self.tools.values())

    def text(self) -> str:
        calls = [{"function": {"name": n, "arguments": a}} for n, a in self.tools.values()]
        return answer_text({"content": self.content, "refusal": self.refusal, "tool_calls": calls})


class UpstreamBroke(GatewayError):
    type = "upstream_error"


class StreamRail:
    def __init__(
        self,
        response: httpx.Response,
        check: CheckAnswers,
        mode: StreamMode,
        window: int,
        strictness: Any,
        opening: Coroutine[Any, Any, bytes] | None = None,
    ) -> None:
        """`opening` resolves to the bytes to send before the first frame (the prompt annotation, or b"")
        once the input rail passed, or raises its refusal; None: it already passed, with nothing to send."""
        self._response = response
        self._check = check
        self._mode = mode
        self._window = window
        self._strictness = strictness
        self._opening = opening
        self._prologue = b""
        self._choices: dict[int, _Choice] = {}
        #: (SSE frame, text received up to and including it, the choices it finishes)
        self._held: list[tuple[bytes, int, tuple[int, ...]]] = []
        self._received = 0
        self._checked = 0  # text received when the last passed check started
        self._meta: dict[str, Any] = {"object": "chat.completion.chunk"}
        self.released = False
        self.output_ms = 0.0

    async def _events(self) -> AsyncGenerator[dict[str, Any] | None, None]:
        """Upstream chunks as JSON; None for `[DONE]`. A broken or unfinished stream raises UpstreamBroke."""
        data: list[str] = []
        try:
            async for line in self._response.aiter_lines():
                if line.startswith("data:"):
                    data.append(line[5:].lstrip())
                elif not line and data:
                    payload, data = "\n".join(data), []
                    if payload == "[DONE]":
                        yield None
                        return
                    try:
                        chunk = json.loads(payload)
                    except json.JSONDecodeError:
                        raise UpstreamBroke(
                            "The upstream sent an event that is not JSON", code="upstream_bad_event"
                        ) from None
                    if isinstance(chunk, dict) and "error" in chunk:
                        # The upstream's own error event: passed on as it is, then the stream ends.
                        raise UpstreamBroke(str(chunk["error"]), code="upstream_error_event", headers={"raw": payload})
                    yield chunk
        except httpx.HTTPError as exc:
            raise UpstreamBroke(f"The upstream LLM's stream broke off: {exc!r}", code="upstream_disconnected") from None
        raise UpstreamBroke("The upstream LLM's stream ended without [DONE]", code="upstream_disconnected")

    async def _open(self) -> None:
        """Wait for the input rail before the first frame; its refusal propagates (nothing was sent)."""
        if self._opening is not None:
            opening, self._opening = self._opening, None
            self._prologue = await opening

    def _take(self, chunk: dict[str, Any]) -> None:
        for key in ("id", "created", "model", "system_fingerprint"):
            if key in chunk:
                self._meta.setdefault(key, chunk[key])
        finishing: list[int] = []
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            state = self._choices.setdefault(int(choice.get("index") or 0), _Choice())
            self._received += state.add(choice.get("delta") or {})
            if choice.get("finish_reason"):
                finishing.append(int(choice.get("index") or 0))
        self._held.append((sse(chunk), self._received, tuple(finishing)))

    def _release(self, upto: int | None) -> bytes:
        """The held frames whose text a passed check covered (all of them for None)."""
        out = []
        for frame, end, finishing in self._held:
            if upto is None or end <= upto:
                out.append(frame)
                for index in finishing:
                    self._choices[index].finished = True
        self._held = [held for held in self._held if upto is not None and held[1] > upto]
        if out or self._prologue:
            out.insert(0, self._prologue)
            self._prologue = b""
            self.released = True
        return b"".join(out)

    def _due(self, final: bool) -> list[tuple[int, str]]:
        if not final and self._mode is StreamMode.END_ONLY:
            return []
        grown = self._received - self._checked
        if not final and grown < (1 if self._checked == 0 else self._window):
            return []
        return [(i, c.text()) for i, c in sorted(self._choices.items()) if c.size() > c.checked]

    def _start(self, due: list[tuple[int, str]]) -> asyncio.Task[tuple[int, list[tuple[int, int]], list[Decision]]]:
        received = self._received
        sizes = [(i, self._choices[i].size()) for i, _ in due]

        async def run() -> tuple[int, list[tuple[int, int]], list[Decision]]:
            started = time.perf_counter()
            decisions = await self._check(due)
            self.output_ms += (time.perf_counter() - started) * 1000
            return received, sizes, decisions

        return asyncio.create_task(run())

    def _blocked_end(self, sizes: list[tuple[int, int]], decisions: list[Decision]) -> bytes:
        by_choice = {index: decision for (index, _), decision in zip(sizes, decisions, strict=True)}
        frames = [self._prologue]
        self._prologue = b""
        for index, state in sorted(self._choices.items()):
            if state.finished and index not in by_choice:
                continue
            choice: dict[str, Any] = {"index": index, "delta": {}, "finish_reason": "content_filter"}
            if index in by_choice:
                choice["content_filter_results"] = filter_results([by_choice[index]])
                choice["qwen3guard"] = qwen3guard([by_choice[index]], self._strictness)
            frames.append(sse({**self._meta, "choices": [choice]}))
        return b"".join(frames) + DONE

    def _annotations(self) -> bytes:
        frames = []
        for index, state in sorted(self._choices.items()):
            if state.annotation:
                choice = {
                    "index": index,
                    "delta": {},
                    "finish_reason": None,
                    "content_filter_results": filter_results(state.annotation),
                    "qwen3guard": qwen3guard(state.annotation, self._strictness),
                }
                frames.append(sse({**self._meta, "choices": [choice]}))
        return b"".join(frames)

    async def frames(self) -> AsyncGenerator[bytes, None]:
        """The frames the client receives. Raises GuardUnavailable (fail closed) only before anything was
        released; later failures become an error event and [DONE]."""
        events = self._events()
        reader: asyncio.Task[Any] | None = asyncio.ensure_future(anext(events, None))
        pending: asyncio.Task[tuple[int, list[tuple[int, int]], list[Decision]]] | None = None
        ended = False
        try:
            while True:
                waiting = {task for task in (reader, pending) if task is not None}
                if not waiting:
                    break
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if pending is not None and pending.done():
                    received, sizes, decisions = pending.result()
                    pending = None
                    if any(decision.blocked for decision in decisions):
                        await self._open()
                        yield self._blocked_end(sizes, decisions)
                        return
                    for (index, size), decision in zip(sizes, decisions, strict=True):
                        self._choices[index].checked = size
                        if annotates([decision]):
                            self._choices[index].annotation = [decision]
                    self._checked = received
                    if self._mode is not StreamMode.STREAM_FIRST:
                        await self._open()
                        if out := self._release(received):
                            yield out
                if reader is not None and reader.done():
                    chunk = reader.result()
                    if chunk is None:  # [DONE]
                        reader, ended = None, True
                    else:
                        self._take(chunk)
                        reader = asyncio.ensure_future(anext(events, None))
                        if self._mode is StreamMode.STREAM_FIRST:
                            await self._open()
                            if out := self._release(None):
                                yield out
                if pending is None:
                    due = self._due(final=ended)
                    if due:
                        pending = self._start(due)
                if ended and pending is None:
                    await self._open()
                    prologue, self._prologue = self._prologue, b""
                    yield prologue + self._annotations() + self._release(None) + DONE
                    return
        except GuardUnavailable as exc:
            if not self.released:
                await self._open()  # an input block is the answer, even when an output check failed first
                raise
            yield sse(exc.body()) + DONE
        except UpstreamBroke as exc:
            await self._open()
            raw = exc.headers.pop("raw", None)
            yield (b"data: " + raw.encode() + b"\n\n" if raw else sse(exc.body())) + DONE
        finally:
            for task in (reader, pending):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
            if self._opening is not None:
                self._opening.close()  # never awaited: the stream ended before its first frame
            await events.aclose()
            await self._response.aclose()
