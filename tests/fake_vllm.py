"""The one in-process fake of vLLM's HTTP API (an httpx.MockTransport handler) for the unit tests.

It answers /v1/models, /tokenize (one token per word; the real ids of the verdict words),
/v1/chat/completions (`reply` decides the text; with `logprobs`, the verdict token's too), both
verdict-first completions (the verdict token, greedy among `allowed_token_ids`, and the follow-up that
continues `reply`) and a custom policy's completion (`reply` continued after the prompt's "Safety:"),
each with a `usage` block counted in the same one-token-per-word way. `down` makes every request a
refused connection (a guard that is down). `served_over_http` puts the same fake (or any such handler)
behind a real socket, for the async client's default aiohttp wire.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

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
    #: Per chat request: a response or exception to answer with instead of `reply` (None: answer normally).
    fail: Callable[[dict[str, Any]], httpx.Response | Exception | None] = lambda body: None
    #: While True every request fails as a refused connection (a guard that is down).
    down: bool = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.calls.append((request.url.path, body))
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if self.script:
            item = self.script.pop(0)
            if isinstance(item, Exception):
                raise item
            return item
        path = request.url.path
        if path == "/v1/models":
            return httpx.Response(
                200, json={"data": [{"id": self.model, "root": self.root, "max_model_len": self.max_model_len}]}
            )
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


@contextmanager
def served_over_http(handler: Callable[[httpx.Request], httpx.Response], stall_s: float) -> Iterator[str]:
    """`handler` behind a real HTTP/1.1 server on 127.0.0.1 (a thread), for as long as the block lasts: its URL.

    What the handler raises becomes what a client sees on the wire: an `httpx.TimeoutException` an answer
    that does not come for `stall_s` seconds (set it past the client's timeout), any other exception a
    connection closed without an answer.
    """

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as vLLM's server
        disable_nagle_algorithm = True  # headers and body go out in two writes

        def _answer(self) -> None:
            content = self.rfile.read(int(self.headers.get("content-length") or 0))
            url = f"http://{self.headers.get('host')}{self.path}"
            request = httpx.Request(self.command, url, headers=list(self.headers.items()), content=content)
            try:
                response = handler(request)
            except httpx.TimeoutException:
                threading.Event().wait(stall_s)  # not time.sleep: tests replace it to skip back-off waits
                self.close_connection = True
                return
            except Exception:
                self.close_connection = True
                return
            body = response.read()
            self.send_response(response.status_code)
            for name, value in response.headers.items():
                if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)  # stops within 10 ms
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
