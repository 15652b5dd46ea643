"""Locust load test for the guard: application-shaped checks under a step-ramp load.

Each simulated user is an application that checks one text after another: a prompt check (the
user's message) or a response check (the model's reply to it), some of them streamed. Every answer
is parsed as a verdict; output that does not parse counts as a failure ("verdict parse failure").
Streamed checks also record their time to first token as a separate `TTFT` entry.

Run it through `python -m loadtest run` (which starts a server when none is given, bounds the run
and writes the reports), or directly with locust, e.g. against a server you run yourself:

    locust -f loadtest/locustfile.py --headless -H http://localhost:8000 --guard-steps 1,2,4 --guard-step-seconds 20

Through the gateway (`--gateway-url`; its client key from $GATEWAY_API_KEY), users also send
`/v1/moderations` and guarded `/v1/chat/completions` (streamed and not) in the shares the
`--gateway-*-share` options give (loadtest/gateway_requests.py); the rest stay direct guard checks.
Gateway answers that are not the documented shape count as failures.

Options (`--guard-*`, `--gateway-*`) are listed by `locust -f loadtest/locustfile.py --help`.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from typing import Any

import httpx
from locust import FastHttpUser, LoadTestShape, constant, events, task
from locust.env import Environment

from bench.corpus import DEFAULT_SAMPLE, GuardItem, load_corpus
from guard_client import DEFAULT_MODEL, ENV_API_KEY, ENV_MODEL, GuardClient, GuardMode, GuardParseError, parse_verdict
from loadtest.gateway_requests import (
    BLOCKED,
    CHAT,
    CHAT_STREAM,
    DIRECT,
    MODERATION,
    GatewayMix,
    Outcome,
    chat_body,
    judge_chat,
    judge_chat_stream,
    judge_moderation,
    moderation_body,
)
from loadtest.mix import CheckMix, check_name, parse_steps
from loadtest.summary import PARSE_FAILURE, TTFT

DECODINGS = ("auto", "free", "constrained")


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    group = parser.add_argument_group("guard checks")
    group.add_argument(
        "--guard-data",
        default=str(DEFAULT_SAMPLE),
        help="comma-separated JSONL files in the ../shared/data/external schema (default: the project's own sample)",
    )
    group.add_argument("--guard-response-share", type=float, default=0.3, help="share of response checks (0-1)")
    group.add_argument("--guard-stream-share", type=float, default=0.25, help="share of streamed checks (0-1)")
    group.add_argument(
        "--guard-decoding",
        choices=DECODINGS,
        default="auto",
        help="free: plain greedy generation, as the client sends; constrained: the client's verdict grammar; "
        "auto: constrained for a random-weight stand-in (its free output never parses), free otherwise",
    )
    group.add_argument("--guard-model", default=os.environ.get(ENV_MODEL, DEFAULT_MODEL))
    group.add_argument("--guard-steps", default="1,2,4,8,16", help="users in each step of the ramp")
    group.add_argument("--guard-step-seconds", type=float, default=16.0, help="how long each step lasts")
    group.add_argument("--guard-seed", type=int, default=0, help="seed for the choice of texts")
    gateway = parser.add_argument_group("gateway requests")
    gateway.add_argument("--gateway-url", default="", help="the gateway (client key from $GATEWAY_API_KEY)")
    gateway.add_argument("--gateway-moderation-share", type=float, default=0.0, help="share of /v1/moderations")
    gateway.add_argument("--gateway-chat-share", type=float, default=0.0, help="share of guarded chat completions")
    gateway.add_argument("--gateway-chat-stream-share", type=float, default=0.5, help="share of those streamed")
    gateway.add_argument("--gateway-chat-model", default="", help="the main LLM's name (default: the first model)")
    gateway.add_argument("--gateway-max-tokens", type=int, default=64, help="max_tokens of each chat completion")


_workload: CheckMix | None = None
_gateway_mix = GatewayMix()
_chat_model = ""
_user_numbers = itertools.count()


def serves_standin(host: str, model: str, api_key: str | None) -> bool:
    with GuardClient(host, api_key=api_key, model=model) as client:
        return client.server_info().is_standin


@events.test_start.add_listener
def _build_workload(environment: Environment, **_: Any) -> None:
    global _workload, _gateway_mix, _chat_model
    options = environment.parsed_options
    if options is None or environment.host is None:
        return
    _gateway_mix = GatewayMix(
        options.gateway_moderation_share, options.gateway_chat_share, options.gateway_chat_stream_share
    )
    if _gateway_mix.uses_gateway and not options.gateway_url:
        raise ValueError("gateway shares need --gateway-url")
    if _gateway_mix.chat_share > 0:
        _chat_model = options.gateway_chat_model or first_model(options.gateway_url)
    decoding = options.guard_decoding
    if decoding == "auto":
        standin = serves_standin(environment.host, options.guard_model, os.environ.get(ENV_API_KEY))
        decoding = "constrained" if standin else "free"
    items = load_corpus(path for path in options.guard_data.split(",") if path)
    _workload = CheckMix(items, options.guard_response_share, options.guard_stream_share, decoding == "constrained")


def gateway_headers() -> dict[str, str]:
    key = os.environ.get("GATEWAY_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


def first_model(gateway_url: str) -> str:
    """The main LLM's name, as the gateway's proxied `/v1/models` lists it first."""
    reply = httpx.get(f"{gateway_url.rstrip('/')}/v1/models", headers=gateway_headers(), timeout=30.0)
    reply.raise_for_status()
    return str(reply.json()["data"][0]["id"])


class GuardCheckUser(FastHttpUser):
    """An application that guards its traffic: one check after another, no think time (closed loop)."""

    wait_time = constant(0)
    network_timeout = 300.0
    connection_timeout = 30.0

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.model = options.guard_model if options else DEFAULT_MODEL
        self.rng = random.Random((options.guard_seed if options else 0) * 100_003 + next(_user_numbers))
        key = os.environ.get(ENV_API_KEY)
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.gateway = (options.gateway_url if options else "").rstrip("/")
        self.gateway_headers = gateway_headers()
        self.max_tokens = options.gateway_max_tokens if options else 64

    @task
    def check(self) -> None:
        if _workload is None:  # pragma: no cover - test_start always runs first
            raise RuntimeError("the guard workload was not built")
        item, stream = _workload.draw(self.rng)
        # Without gateway shares no extra draw: the direct checks' sequence of texts stays as before.
        kind = _gateway_mix.draw(self.rng) if _gateway_mix.uses_gateway else DIRECT
        if kind == MODERATION:
            self._moderation(item)
            return
        if kind in (CHAT, CHAT_STREAM):
            self._chat(item, kind)
            return
        assert kind == DIRECT
        body = _workload.body(item, self.model, stream)
        name = check_name(item.mode, stream)
        if stream:
            self._streamed(name, item, body)
        else:
            self._plain(name, item, body)

    def _plain(self, name: str, item: GuardItem, body: dict[str, Any]) -> None:
        with self.client.post(
            "/v1/chat/completions", json=body, name=name, headers=self.headers, catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                return
            try:
                text = response.json()["choices"][0]["message"]["content"] or ""
            except (ValueError, KeyError, IndexError, TypeError):
                response.failure("malformed chat completion")
                return
            _judge(response, text, item.mode)

    def _streamed(self, name: str, item: GuardItem, body: dict[str, Any]) -> None:
        started = time.perf_counter()
        with self.client.post(
            "/v1/chat/completions", json=body, name=name, headers=self.headers, stream=True, catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                return
            lines, first_token_ms = _read_sse(response, started)
            pieces = [_sse_delta(line) for line in lines]
            response.request_meta["response_length"] = sum(len(p) for p in pieces)
            _judge(response, "".join(pieces), item.mode)
        self._ttft(name, first_token_ms)

    def _ttft(self, name: str, first_token_ms: float | None) -> None:
        if first_token_ms is not None:
            self.environment.events.request.fire(
                request_type=TTFT,
                name=name,
                response_time=first_token_ms,
                response_length=0,
                exception=None,
                context={},
            )

    def _post_to_gateway(self, path: str, body: dict[str, Any], name: str, stream: bool = False) -> Any:
        """A request to the gateway whose success this user judges (a context manager, as locust's post)."""
        return self.client.post(
            f"{self.gateway}{path}",
            json=body,
            name=name,
            headers=self.gateway_headers,
            stream=stream,
            catch_response=True,
        )

    def _moderation(self, item: GuardItem) -> None:
        body = moderation_body(item.prompt, self.model)
        with self._post_to_gateway("/v1/moderations", body, MODERATION) as response:
            _settle(response, MODERATION, judge_moderation(response.status_code, response.text or ""))

    def _chat(self, item: GuardItem, name: str) -> None:
        stream = name == CHAT_STREAM
        body = chat_body(item.prompt, _chat_model, stream, self.max_tokens)
        started = time.perf_counter()
        first_token_ms: float | None = None
        with self._post_to_gateway("/v1/chat/completions", body, name, stream) as response:
            if not stream:
                outcome = judge_chat(response.status_code, response.text or "")
            elif response.status_code != 200:
                outcome = judge_chat_stream(response.status_code, (response.text or "").splitlines())
            else:
                lines, first_token_ms = _read_sse(response, started)
                outcome = judge_chat_stream(200, lines)
            _settle(response, name, outcome)
        if not outcome.blocked:
            self._ttft(name, first_token_ms)


def _read_sse(response: Any, started: float) -> tuple[list[str], float | None]:
    """Every line of a server-sent event stream, and the ms to its first content delta."""
    first_token_ms: float | None = None
    lines: list[str] = []
    buffer = b""
    # geventhttpclient's read(n) waits for n bytes: read byte by byte until the first token
    # has arrived (so TTFT is exact), then in large reads.
    for chunk_size in (1, 1 << 16):
        for chunk in response.iter_content(chunk_size=chunk_size, decode_content=False):
            buffer += chunk
            while b"\n" in buffer:
                raw, buffer = buffer.split(b"\n", 1)
                line = raw.decode("utf-8", "replace").strip()
                if line:
                    lines.append(line)
                if first_token_ms is None and _sse_delta(line):
                    first_token_ms = (time.perf_counter() - started) * 1000
            if first_token_ms is not None and chunk_size == 1:
                break
    if buffer.strip():
        lines.append(buffer.decode("utf-8", "replace").strip())
    # With stream=True locust stops its clock at the headers; a stream lasts until its last event.
    response.request_meta["response_time"] = (time.perf_counter() - started) * 1000
    return lines, first_token_ms


def _settle(response: Any, name: str, outcome: Outcome) -> None:
    """Record a gateway answer: a block under its own name, anything undocumented as a failure."""
    if outcome.blocked:
        response.request_meta["name"] = name + BLOCKED
    if outcome.error is not None:
        response.failure(outcome.error)
    else:
        response.success()


def _sse_delta(line: str) -> str:
    """The content delta of one server-sent event line of a chat stream ('' for anything else)."""
    line = line.strip()
    if not line.startswith("data:") or line == "data: [DONE]":
        return ""
    try:
        choices = json.loads(line[5:]).get("choices") or []
    except ValueError:
        return ""
    return str((choices[0].get("delta") or {}).get("content") or "") if choices else ""


def _judge(response: Any, text: str, mode: GuardMode) -> None:
    """Mark the check failed when its output is not a verdict: unreadable output is never Safe."""
    try:
        parse_verdict(text, mode)
    except GuardParseError as exc:
        response.failure(f"{PARSE_FAILURE}: {exc.reason}")
        return
    response.success()


class StepRamp(LoadTestShape):
    """Hold each user count of `--guard-steps` for `--guard-step-seconds`, then stop.

    Throughput that stops growing from one step to the next while latency keeps rising marks the
    saturation point; `python -m loadtest run` reads it from the stats history.
    """

    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options if self.runner else None
        steps = parse_steps(options.guard_steps if options else "1")
        seconds = options.guard_step_seconds if options else 20.0
        index = int(self.get_run_time() // seconds)
        if index >= len(steps):
            return None
        return steps[index], 100.0  # switch steps at once: each step is a clean plateau
