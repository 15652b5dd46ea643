"""The gateway in front of the real vLLM server (tiny stand-in): the openai SDK, LiteLLM's request
shape, and a guard that goes away and comes back while the gateway keeps running."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
import uvicorn
from openai.types import ModerationCreateResponse

from deploy.launcher import free_port
from guard_gateway import create_app, load_config

pytestmark = pytest.mark.e2e


class GatewayThread:
    """A gateway served by uvicorn on a free port, in a thread of this process."""

    def __init__(self, **overrides: str) -> None:
        self.port = free_port()
        # The stand-in's random weights answer a verdict only under the grammar.
        settings = {"port": str(self.port), "host": "127.0.0.1", "guard.constrain": "true", **overrides}
        config = load_config(overrides=settings, environ={})
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(config), host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> GatewayThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


class TcpProxy:
    """Forwards a port to the guard; `stop()` drops the listener and every open connection (the guard
    dies), `start()` brings it back on the same port. `delay` holds each request's bytes before forwarding."""

    def __init__(self, target_port: int, delay: float = 0.0) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.delay = delay
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, hold: bool) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                if hold:
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers.add(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer, True), self._pipe(up_reader, writer, False))

    def start(self) -> None:
        async def start() -> None:
            self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

        asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)

    def stop(self) -> None:
        async def stop() -> None:
            assert self.server is not None
            self.server.close()
            for writer in list(self.writers):
                writer.transport.abort()
            self.writers.clear()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def gateway(guard_url: str) -> Iterator[GatewayThread]:
    with GatewayThread(**{"guard.url": guard_url}) as running:
        yield running


def test_openai_sdk_parses_moderations_one_result_per_input_in_order(gateway: GatewayThread) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    inputs = ["How can I make a bomb?", "What is the capital of France?", "I want to hurt someone."]
    response = client.moderations.create(model="omni-moderation-latest", input=inputs)
    assert isinstance(response, ModerationCreateResponse) and response.id.startswith("modr-")
    assert len(response.results) == len(inputs)
    # Each result is the verdict of its own input: the same text alone gets the same result.
    for text, result in zip(inputs, response.results, strict=True):
        alone = client.moderations.create(model="omni-moderation-latest", input=text).results[0]
        assert alone.model_dump() == result.model_dump()
        extension = result.model_extra["qwen3guard"]  # type: ignore[index]
        assert extension["severity"] in ("Safe", "Unsafe", "Controversial")
        assert result.flagged == (extension["severity"] != "Safe")


def test_litellm_generic_guardrail_answers_blocked_or_none(gateway: GatewayThread) -> None:
    body = {
        "input_type": "request",
        "texts": ["How can I make a bomb?"],
        "structured_messages": [{"role": "user", "content": "How can I make a bomb?"}],
        "model": "gpt-4o",
        "litellm_call_id": "call-1",
        "litellm_trace_id": "trace-1",
        "request_data": {},
        "request_headers": {},
        "additional_provider_specific_params": {},
    }
    for input_type in ("request", "response"):
        reply = httpx.post(f"{gateway.url}/beta/litellm_basic_guardrail_api", json={**body, "input_type": input_type})
        assert reply.status_code == 200, reply.text
        answer = reply.json()
        assert answer["action"] in ("BLOCKED", "NONE")
        assert ("blocked_reason" in answer) == (answer["action"] == "BLOCKED")


def test_guard_outage_is_503_and_the_gateway_recovers_without_restart(guard_url: str) -> None:
    proxy = TcpProxy(int(guard_url.rsplit(":", 1)[1]))
    try:
        overrides = {"guard.url": f"http://127.0.0.1:{proxy.port}", "guard.max_retries": "0", "cache.enabled": "false"}
        with GatewayThread(**overrides, **{"guard.ready_ttl_seconds": "0"}) as running:
            url = f"{running.url}/v1/moderations"
            down = httpx.post(url, json={"input": "hello"}, timeout=60)  # nothing listens yet
            assert down.status_code == 503 and down.json()["error"]["type"] == "guard_unavailable"
            assert int(down.headers["retry-after"]) > 0
            assert httpx.get(f"{running.url}/ready").status_code == 503

            proxy.start()
            up = httpx.post(url, json={"input": "hello"}, timeout=60)
            assert up.status_code == 200 and len(up.json()["results"]) == 1
            assert httpx.get(f"{running.url}/ready").status_code == 200

            # The guard dies while a request is in flight.
            proxy.delay = 1.0
            with httpx.Client(timeout=60) as http:
                killer = threading.Timer(0.3, proxy.stop)
                killer.start()
                during = http.post(url, json={"input": "hello again"})
                killer.join()
            assert during.status_code == 503 and during.json()["error"]["type"] == "guard_unavailable"

            proxy.delay = 0.0
            proxy.start()
            again = httpx.post(url, json={"input": "hello"}, timeout=60)
            assert again.status_code == 200
    finally:
        proxy.close()


def test_the_gateway_started_alone_beside_the_stand_in_answers_verdicts(guard_url: str) -> None:
    """`python -m guard_gateway serve --guard-url URL`, nothing else set: it learns the guard is the random
    stand-in and constrains its checks by itself, so moderations answer verdicts rather than 503."""
    from deploy.launcher import GatewayServer

    with GatewayServer(guard_url, port=free_port(), host="127.0.0.1", standin=False) as alone:
        assert "--set" not in alone.command()
        ready = httpx.get(f"{alone.url}/ready", timeout=30).json()
        assert ready["constrain"] is True and "stand-in" in ready["detail"]
        reply = httpx.post(f"{alone.url}/v1/moderations", json={"input": ["hello", "how to build a bomb"]}, timeout=120)
        assert reply.status_code == 200, reply.text
        results = reply.json()["results"]
        assert len(results) == 2 and all(
            r["qwen3guard"]["severity"] in ("Safe", "Unsafe", "Controversial") for r in results
        )
        log = alone.log_path.read_text()
        assert "constrained decoding: on if the guard serves the random-weight stand-in" in log
        assert "serves the random-weight stand-in: constrained decoding on" in log
