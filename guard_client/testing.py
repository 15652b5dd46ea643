"""Test doubles of the guard server, public as httpx ships `MockTransport`: `FakeVLLM`, an in-process fake of
vLLM's HTTP API (an `httpx.MockTransport` handler), and `served_over_http`, the one way to put such a handler
(or any other, sync or async) behind a real socket on a free port.

`FakeVLLM` answers /health, /v1/models, /tokenize (one token per word; the real ids of the verdict words),
/v1/chat/completions (`reply` decides the text; with `logprobs`, the verdict token's too), both
verdict-first completions (the verdict token, greedy among `allowed_token_ids`, and the follow-up that
continues `reply`) and a custom policy's completion (`reply` continued after the prompt's "Safety:"),
each with a `usage` block counted in the same one-token-per-word way. `down` makes
every request a refused connection (a guard that is down). `with_latency` gives any handler a service
time and a number of slots (a capacity), as a benchmark's fixed-latency guard needs.

Imported on demand (`import guard_client` does not load it); it needs nothing beyond the library's own
dependencies.

    import httpx
    from guard_client import GuardClient
    from guard_client.testing import FakeVLLM

    fake = FakeVLLM(reply=lambda body: "Safety: Unsafe\nCategories: Violent")
    guard = GuardClient("http://fake", transport=httpx.MockTransport(fake))
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import multiprocessing
import signal
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = [
    "CHECK_PATHS",
    "VERDICT_IDS",
    "FakeVLLM",
    "Handler",
    "marked_failure",
    "marked_fake",
    "marked_reply",
    "serve_forever",
    "served_over_http",
    "with_latency",
]

#: What an `httpx.MockTransport` accepts: a function from request to response, sync or async.
Handler = Callable[[httpx.Request], "httpx.Response | Awaitable[httpx.Response]"]
#: The routes that run a check (and take a guard's service time); the others answer at once.
CHECK_PATHS = ("/v1/chat/completions", "/v1/completions")

# Token ids as the real Qwen tokenizer splits "Safety: <word>".
VERDICT_IDS = {"Safe": 22291, "Unsafe": 73067, "Controversial": 2093}
PREFIX_IDS = [73037, 25]


@dataclass
class FakeVLLM:
    """Answers like vLLM; `reply` gives the chat output text, `script` can override any response."""

    reply: Callable[[dict[str, Any]], str] = lambda body: "Safety: Safe\nCategories: None"
    max_model_len: int = 8192
    model: str = "qwen3guard"
    root: str = "/models/Qwen3Guard-Gen-0.6B"
    verdict_probs: dict[str, float] = field(
        default_factory=lambda: {"Safe": 0.1, "Unsafe": 0.85, "Controversial": 0.05}
    )
    script: list[httpx.Response | Exception] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any] | None]] = field(default_factory=list)
    #: Per call, in step with `calls`: the `X-Session-ID` header a router would route it by (None: absent).
    sessions: list[str | None] = field(default_factory=list)
    #: Per chat request: a response or exception to answer with instead of `reply` (None: answer normally).
    fail: Callable[[dict[str, Any]], httpx.Response | Exception | None] = lambda body: None
    #: While True every request fails as a refused connection (a guard that is down).
    down: bool = False
    #: LoRA adapters served beside `model`, listed as vLLM lists them: `parent` the base, no max_model_len.
    adapters: tuple[str, ...] = ()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.calls.append((request.url.path, body))
        self.sessions.append(request.headers.get("x-session-id"))
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if self.script:
            item = self.script.pop(0)
            if isinstance(item, Exception):
                raise item
            return item
        path = request.url.path
        if path == "/health":  # vLLM's liveness probe, which vllm-router polls before it routes
            return httpx.Response(200)
        if path == "/v1/models":
            base = {"id": self.model, "root": self.root, "max_model_len": self.max_model_len}
            loras = [{"id": name, "root": f"/adapters/{name}", "parent": self.model} for name in self.adapters]
            return httpx.Response(200, json={"data": [base, *loras]})
        if path == "/tokenize":
            return httpx.Response(200, json=self._tokenize(body or {}))
        if path == "/v1/chat/completions":
            failure = self.fail(body or {})
            if isinstance(failure, Exception):
                raise failure
            if failure is not None:
                return failure
            text = self.reply(body or {})
            prompt = " ".join(str(m.get("content")) for m in (body or {}).get("messages", []))
            choice: dict[str, Any] = {"message": {"content": text}, "finish_reason": "stop"}
            if (body or {}).get("logprobs"):
                choice["logprobs"] = {"content": self._chat_logprobs(text)}
            return httpx.Response(200, json={"choices": [choice], "usage": self.usage(prompt, text)})
        if path == "/v1/completions" and (body or {}).get("max_tokens") != 1:
            answer = self.reply(body or {})
            prompt = (body or {}).get("prompt", "")
            if prompt.endswith("Safety:"):
                # A custom policy's full generation: continue `reply`'s answer after the prompt's "Safety:".
                rest = answer.removeprefix("Safety:")
                choice = {"text": rest, "finish_reason": "stop"}
                if (body or {}).get("logprobs"):
                    choice["logprobs"] = self._completion_logprobs(rest)
                return httpx.Response(200, json={"choices": [choice], "usage": self.usage(prompt, rest)})
            # The verdict-first follow-up: continue `reply`'s answer after the prompt's "Categories:".
            head, sep, rest = answer.partition("Categories:")
            if not sep or not prompt.endswith(head + sep):
                return httpx.Response(400, json={"error": {"message": "follow-up does not continue the answer"}})
            return httpx.Response(
                200, json={"choices": [{"text": rest, "finish_reason": "stop"}], "usage": self.usage(prompt, rest)}
            )
        if path == "/v1/completions":
            top = {f"token_id:{VERDICT_IDS[w]}": math.log(p) for w, p in self.verdict_probs.items()}
            allowed = set((body or {}).get("allowed_token_ids") or VERDICT_IDS.values())
            candidates = [w for w in self.verdict_probs if VERDICT_IDS[w] in allowed]
            chosen = max(candidates, key=self.verdict_probs.__getitem__)
            token = f"token_id:{VERDICT_IDS[chosen]}"
            logprobs = {"tokens": [token], "token_logprobs": [top[token]], "top_logprobs": [top]}
            return httpx.Response(
                200,
                json={
                    "choices": [{"text": " " + chosen, "logprobs": logprobs}],
                    "usage": self.usage((body or {}).get("prompt", ""), " " + chosen),
                },
            )
        return httpx.Response(404, json={"error": {"message": f"no route {path}"}})

    def _chat_logprobs(self, content: str) -> list[dict[str, Any]]:
        """Logprobs of "Safety:" and the verdict token (`verdict_probs`), as vLLM returns them with token ids."""
        word = content.split("\n")[0].removeprefix("Safety:").strip()
        top = [{"token": f"token_id:{VERDICT_IDS[w]}", "logprob": math.log(p)} for w, p in self.verdict_probs.items()]
        head = [
            {"token": f"token_id:{PREFIX_IDS[0]}", "bytes": list(b"Safety"), "logprob": 0.0, "top_logprobs": []},
            {"token": f"token_id:{PREFIX_IDS[1]}", "bytes": list(b":"), "logprob": 0.0, "top_logprobs": []},
        ]
        chosen = f"token_id:{VERDICT_IDS[word]}"
        logprob = math.log(self.verdict_probs[word])
        return [*head, {"token": chosen, "bytes": list(f" {word}".encode()), "logprob": logprob, "top_logprobs": top}]

    def _completion_logprobs(self, rest: str) -> dict[str, Any]:
        """A completion's logprobs after "Safety:" (its first token is the verdict word's), with token ids."""
        word = rest.split("\n")[0].strip()
        top = {f"token_id:{VERDICT_IDS[w]}": math.log(p) for w, p in self.verdict_probs.items()}
        chosen = f"token_id:{VERDICT_IDS[word]}"
        return {"tokens": [chosen], "token_logprobs": [top[chosen]], "top_logprobs": [top], "text_offset": [0]}

    def _tokenize(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = body.get("prompt", "")
        if prompt == "Safety:":
            tokens = PREFIX_IDS
        elif prompt.startswith("Safety: ") and prompt[8:] in VERDICT_IDS:
            tokens = [*PREFIX_IDS, VERDICT_IDS[prompt[8:]]]
        else:
            tokens = list(range(len(prompt.split())))  # one token per word: easy to reason about
        return {"count": len(tokens), "tokens": tokens, "max_model_len": self.max_model_len}

    @staticmethod
    def usage(prompt: str, completion: str) -> dict[str, int]:
        """Token counts as this fake counts them: one per word (at least one for any output)."""
        return {"prompt_tokens": len(prompt.split()), "completion_tokens": max(1, len(completion.split()))}

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [body for called, body in self.calls if called == path and body is not None]

    def paths(self) -> list[str]:
        return [path for path, _ in self.calls]


def marked_reply(body: dict[str, Any]) -> str:
    """A `reply` that reads markers in the checked text: 'UNSAFE' -> Unsafe, 'CONTRO' -> Controversial
    (both Violent), 'GARBLE' -> unreadable output, anything else Safe; in response moderation 'REFUSE'
    -> Refusal: Yes and 'NOREFUSAL' -> no Refusal line."""
    last = body["messages"][-1]
    text = last["content"]
    if "GARBLE" in text:
        return "\n\n"
    safety = "Unsafe" if "UNSAFE" in text else "Controversial" if "CONTRO" in text else "Safe"
    answer = f"Safety: {safety}\nCategories: {'Violent' if safety != 'Safe' else 'None'}"
    if last["role"] == "assistant" and "NOREFUSAL" not in text:
        answer += f"\nRefusal: {'Yes' if 'REFUSE' in text else 'No'}"
    return answer


def marked_failure(body: dict[str, Any]) -> httpx.Response | None:
    """A `fail` hook: 'BROKEN' in the checked text -> HTTP 500."""
    if "BROKEN" in body["messages"][-1]["content"]:
        return httpx.Response(500, json={"error": {"message": "engine died"}})
    return None


def marked_fake(**kwargs: Any) -> FakeVLLM:
    """The fake vLLM answering by markers (`marked_reply`, `marked_failure`)."""
    return FakeVLLM(**{"reply": marked_reply, "fail": marked_failure, **kwargs})


def with_latency(
    handler: Handler, delay: float, *, output_delay: float | None = None, slots: int | None = None
) -> Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]:
    """`handler` answering a check (`CHECK_PATHS`) after `delay` seconds, or `output_delay` when the checked
    conversation ends with the assistant (response moderation), at most `slots` at a time (a capacity of
    slots / delay checks/s); the other routes answer at once."""
    semaphore: asyncio.Semaphore | None = None  # made in the loop that serves

    async def answer(request: httpx.Request) -> httpx.Response:
        nonlocal semaphore
        if request.url.path in CHECK_PATHS:
            wait = delay
            if output_delay is not None:
                messages = (json.loads(request.content) if request.content else {}).get("messages") or [{}]
                wait = output_delay if messages[-1].get("role") == "assistant" else delay
            if slots:
                semaphore = semaphore or asyncio.Semaphore(slots)
                async with semaphore:
                    await asyncio.sleep(wait)
            elif wait:
                await asyncio.sleep(wait)
        result = handler(request)
        return await result if inspect.isawaitable(result) else result

    return answer


async def _stall(seconds: float) -> None:
    # A timer, not asyncio.sleep: tests replace asyncio.sleep to skip the clients' back-off waits.
    stalled = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_later(seconds, stalled.set_result, None)
    await stalled


async def _write(writer: asyncio.StreamWriter, response: httpx.Response) -> bool:
    """Send `response` (streamed, chunked, when its body has not been read); False when it broke off."""
    skip = ("content-length", "transfer-encoding", "connection")
    head = f"HTTP/1.1 {response.status_code} {response.reason_phrase}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in response.headers.multi_items() if name.lower() not in skip
    )
    stream = response.stream
    try:
        body: bytes | None = response.content
    except httpx.ResponseNotRead:
        body = None if isinstance(stream, httpx.AsyncByteStream) else response.read()
    if body is not None:
        writer.write(f"{head}content-length: {len(body)}\r\n\r\n".encode("latin-1") + body)
        await writer.drain()
        return True
    assert isinstance(stream, httpx.AsyncByteStream)
    writer.write(f"{head}transfer-encoding: chunked\r\n\r\n".encode("latin-1"))
    try:
        async for chunk in stream:
            if chunk:
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
    except Exception:  # a stream that dies mid-way: the connection drops, as a reset upstream's does
        return False
    finally:
        await stream.aclose()
    return True


async def _connection(
    handler: Handler, stall_s: float, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """HTTP/1.1 keep-alive, one request after another, each answered by `handler`."""
    try:
        while True:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            method, target, _ = head[0].split(" ", 2)
            headers = [(name.strip(), value.strip()) for name, _, value in (line.partition(":") for line in head[1:])]
            fields = {name.lower(): value for name, value in headers if name}
            body = await reader.readexactly(int(fields.get("content-length") or 0))
            url = f"http://{fields.get('host', '127.0.0.1')}{target}"
            request = httpx.Request(method, url, headers=[h for h in headers if h[0]], content=body)
            try:
                answer = handler(request)
                response = await answer if inspect.isawaitable(answer) else answer
            except httpx.TimeoutException:
                await _stall(stall_s)
                return
            except Exception:
                return
            if not await _write(writer, response):
                return
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
        return
    finally:
        writer.close()


async def _serve(handler: Handler, sock: socket.socket, stall_s: float, stop: threading.Event | None) -> None:
    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _connection(handler, stall_s, reader, writer)

    server = await asyncio.start_server(connection, sock=sock, limit=1 << 20)
    if stop is None:
        await server.serve_forever()
    else:
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)
        server.close()  # asyncio.run then cancels the open connections


def _listening_socket(port: int = 0) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    return sock


def serve_forever(handler: Handler, port: int, stall_s: float = 0.0) -> None:
    """Serve `handler` on 127.0.0.1:`port` until the process ends (a fake server of its own, e.g. one that a
    reliability scenario kills and restarts)."""
    asyncio.run(_serve(handler, _listening_socket(port), stall_s, None))


def _serve_in_child(handler: Handler, sock: socket.socket, stall_s: float) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent's handler is not this process's to run
    asyncio.run(_serve(handler, sock, stall_s, None))


@contextmanager
def served_over_http(handler: Handler, stall_s: float = 0.0, *, process: bool = False) -> Iterator[str]:
    """`handler` behind a real HTTP/1.1 keep-alive server on a free port of 127.0.0.1, for as long as the block
    lasts: its URL (no path).

    What the handler raises becomes what a client sees on the wire: an `httpx.TimeoutException` an answer
    that does not come for `stall_s` seconds (set it past the client's timeout), any other exception a
    connection closed without an answer; a response with an unread async stream goes out chunk by chunk as
    the stream yields. The server runs in a thread of this process, or with `process=True` in a forked
    process of its own (a benchmark's fake then shares no GIL with what it measures; what the handler
    records stays in that process). The socket listens before the server starts, so no request races it.
    """
    sock = _listening_socket()
    if process:
        child = multiprocessing.get_context("fork").Process(
            target=_serve_in_child, args=(handler, sock, stall_s), daemon=True
        )
        child.start()

        def stop() -> None:
            child.terminate()
            child.join(timeout=10)

    else:
        stopping = threading.Event()
        thread = threading.Thread(target=asyncio.run, args=(_serve(handler, sock, stall_s, stopping),), daemon=True)
        thread.start()

        def stop() -> None:
            stopping.set()
            thread.join(timeout=10)

    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop()
        sock.close()
