"""Closed-loop drivers and server-side probes the benchmarks share.

A run keeps `concurrency` checks in flight until every item is done and times each one; checks/s is
the number of items over the wall time from the first request sent to the last answer received.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Unpack

import httpx
import psutil

from bench.corpus import GuardItem
from bench.loops import CheckOutcome
from guard_client import DEFAULT_MODEL, CheckOptions

if TYPE_CHECKING:
    from guard_client import AsyncGuardClient

#: Output tokens the real Qwen3Guard-Gen writes for one verdict, end token excluded (reference notes).
REAL_OUTPUT_TOKENS = {"prompt": 9, "response": 13}
MODEL_NAME = DEFAULT_MODEL
HTTP_TIMEOUT = 600.0


def _forced(output_tokens: int) -> dict[str, Any]:
    """Sampling fields that make the output exactly `output_tokens` long, whatever the weights say."""
    return {"temperature": 0, "max_tokens": output_tokens, "min_tokens": output_tokens, "ignore_eos": True}


def forced_chat_body(item: GuardItem, output_tokens: int, model: str = MODEL_NAME) -> dict[str, Any]:
    """A chat request whose output is exactly `output_tokens` long."""
    return {"model": model, "messages": item.messages(), **_forced(output_tokens)}


async def forced_chat_check(
    http: httpx.AsyncClient, item: GuardItem, output_tokens: int, model: str = MODEL_NAME
) -> CheckOutcome:
    body = forced_chat_body(item, output_tokens, model)
    return await _forced_check(http, "/v1/chat/completions", body, output_tokens)


async def forced_completion_check(http: httpx.AsyncClient, prompt: str, output_tokens: int) -> CheckOutcome:
    """A raw completion of an already rendered guard prompt, exactly `output_tokens` long."""
    body = {"model": MODEL_NAME, "prompt": prompt, **_forced(output_tokens)}
    return await _forced_check(http, "/v1/completions", body, output_tokens)


async def _forced_check(http: httpx.AsyncClient, path: str, body: dict[str, Any], output_tokens: int) -> CheckOutcome:
    reply = await http.post(path, json=body)
    reply.raise_for_status()
    usage = reply.json().get("usage") or {}
    produced = int(usage.get("completion_tokens", -1))
    if produced != output_tokens:
        raise RuntimeError(f"asked for exactly {output_tokens} output tokens, the server wrote {produced}")
    return CheckOutcome(0.0, int(usage.get("prompt_tokens", 0)), produced)


_SAMPLE_LINE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(?P<value>\S+)$")


def parse_counters(metrics_text: str, names: Sequence[str]) -> dict[str, float]:
    """Sum the samples of each named counter over its label sets in a Prometheus text exposition."""
    totals = dict.fromkeys(names, 0.0)
    for line in metrics_text.splitlines():
        match = _SAMPLE_LINE.match(line.strip())
        if match and match["name"] in totals:
            totals[match["name"]] += float(match["value"])
    return totals


PREFIX_QUERIES, PREFIX_HITS = "vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total"


async def prefix_cache_counters(http: httpx.AsyncClient) -> dict[str, float]:
    reply = await http.get("/metrics")
    reply.raise_for_status()
    return parse_counters(reply.text, [PREFIX_QUERIES, PREFIX_HITS])


def hit_rate(before: dict[str, float], after: dict[str, float]) -> float | None:
    """Prefix-cache hits over queried prompt tokens between two scrapes; None when nothing was queried."""
    queries = after[PREFIX_QUERIES] - before[PREFIX_QUERIES]
    return (after[PREFIX_HITS] - before[PREFIX_HITS]) / queries if queries > 0 else None


class RssSampler:
    """Samples the summed RSS of a process's descendants (the server or baseline it started) in a thread."""

    def __init__(self, root: psutil.Process | None = None, interval_s: float = 0.25) -> None:
        self._root = root or psutil.Process()
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.peak_bytes = 0

    def sample(self) -> int:
        total = 0
        for process in self._root.children(recursive=True):
            try:
                total += process.memory_info().rss
            except psutil.Error:  # exited between listing and reading
                continue
        self.peak_bytes = max(self.peak_bytes, total)
        return total

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.sample()

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def peak_gib(self) -> float:
        return self.peak_bytes / 2**30


@dataclass
class _CheckContext:
    outcome: CheckOutcome
    pin_token: int | None = None


_current: contextvars.ContextVar[_CheckContext | None] = contextvars.ContextVar("bench_check", default=None)


class InstrumentedTransport(httpx.AsyncBaseTransport):
    """Counts a check's requests and tokens; can make a random-weight model answer like the real one.

    - `pin_token`: narrows the verdict-first request's `allowed_token_ids` from the three verdict words
      to the one the dataset label implies, so the follow-up (the details of a flagged verdict) happens
      exactly for harmful items. The server does the same work either way: one decode step over the
      same prompt.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self._inner = inner or httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=None))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        context = _current.get()
        if context is not None and request.method == "POST" and request.url.path.startswith("/v1/"):
            request = _rewrite(request, context)
        response = await self._inner.handle_async_request(request)
        content = await response.aread()
        await response.aclose()
        if context is not None and request.url.path.startswith("/v1/"):
            context.outcome.requests += 1
            with contextlib.suppress(ValueError, AttributeError):
                usage = json.loads(content).get("usage") or {}
                context.outcome.prompt_tokens += int(usage.get("prompt_tokens", 0))
                context.outcome.output_tokens += int(usage.get("completion_tokens", 0))
        headers = [
            (k, v) for k, v in response.headers.items() if k.lower() not in ("content-encoding", "content-length")
        ]
        return httpx.Response(response.status_code, headers=headers, content=content, request=request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _rewrite(request: httpx.Request, context: _CheckContext) -> httpx.Request:
    body = json.loads(request.content)
    if context.pin_token is None or "allowed_token_ids" not in body:  # only the verdict-word request
        return request
    body["allowed_token_ids"] = [context.pin_token]
    headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
    return httpx.Request(request.method, request.url, headers=headers, json=body)


async def instrumented_check(
    client: AsyncGuardClient,
    item: GuardItem,
    pin_token: int | None = None,
    **options: Unpack[CheckOptions],
) -> CheckOutcome:
    """One `client.check` whose requests and tokens are counted by the client's `InstrumentedTransport`."""
    outcome = CheckOutcome(0.0, requests=0)
    _current.set(_CheckContext(outcome, pin_token))
    await client.check(item.messages(), **options)
    return outcome
