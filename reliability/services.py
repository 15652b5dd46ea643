"""The processes a scenario starts and kills: the project's own fakes served over real HTTP in a
subprocess (tests/fake_vllm.FakeVLLM as the guard, loadtest/fake_llm.FakeUpstream as the main LLM),
the gateway, and the accounting of what is left running.

    python -m reliability.services guard --port P [--verdict unsafe|marked|injection] [--delay S] [--slots N]
                                         [--record F]
    python -m reliability.services upstream --port P [--words N] [--token-interval S]

The fakes are httpx handlers; `asgi_app` puts one behind uvicorn so a fault can SIGKILL, SIGSTOP and
restart it like a real server. `--delay`/`--slots` give the guard a capacity (slots / delay checks/s).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent
Handler = Callable[[httpx.Request], "httpx.Response | Awaitable[httpx.Response]"]
ASGI = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
LOGGERS = ("guard_gateway", "uvicorn", "httpx")
CHECK_PATHS = ("/v1/chat/completions", "/v1/completions")
UNSAFE_ANSWER = "Safety: Unsafe\nCategories: Violent"


def asgi_app(handler: Handler, delay: float = 0.0, slots: int | None = None, record: Path | None = None) -> ASGI:
    """An ASGI app answering every request with `handler`'s httpx.Response (streamed as it comes)."""
    semaphore = asyncio.Semaphore(slots) if slots else None

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        url = f"http://fake{scope['path']}" + (f"?{scope['query_string'].decode()}" if scope["query_string"] else "")
        request = httpx.Request(scope["method"], url, headers=headers, content=body)
        if record is not None:
            with record.open("a") as log:
                line = {"path": scope["path"], "headers": dict(headers), "body": body.decode("utf-8", "replace")}
                log.write(json.dumps(line) + "\n")
        if scope["path"] in CHECK_PATHS and (delay or semaphore):
            if semaphore is not None:
                async with semaphore:
                    await asyncio.sleep(delay)
            else:
                await asyncio.sleep(delay)
        answer = handler(request)
        response = await answer if inspect.isawaitable(answer) else answer
        raw = [(k, v) for k, v in response.headers.raw if k.lower() not in (b"transfer-encoding", b"content-length")]
        await send({"type": "http.response.start", "status": response.status_code, "headers": raw})
        stream: Any = response.stream
        async for chunk in stream:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


def _guard_handler(verdict: str) -> Handler:
    from tests.fake_vllm import FakeVLLM, marked_failure, marked_reply

    if verdict == "unsafe":
        return FakeVLLM(reply=lambda body: UNSAFE_ANSWER)
    if verdict == "injection":
        from reliability.injection import injection_reply

        return FakeVLLM(reply=injection_reply)
    return FakeVLLM(reply=marked_reply, fail=marked_failure)


def _upstream_handler(words: int, token_interval: float) -> Handler:
    from loadtest.fake_llm import FakeUpstream

    answer = " ".join(f"word{i}" for i in range(words))
    return FakeUpstream(answers=[answer], token_interval=token_interval)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    if args.kind == "guard":
        app = asgi_app(_guard_handler(args.verdict), args.delay, args.slots, Path(args.record) if args.record else None)
    else:
        app = asgi_app(_upstream_handler(args.words, args.token_interval))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", lifespan="off", access_log=False)
    return 0


# -- processes -----------------------------------------------------------------------------------------


class Service:
    """A subprocess serving HTTP on `port`; `start` waits until `ready_path` answers."""

    def __init__(self, name: str, argv: Sequence[str], port: int, ready_path: str, log: Path) -> None:
        self.name, self.argv, self.port, self.ready_path, self.log = name, list(argv), port, ready_path, log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Service:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"{self.name} is already running (pid {self.proc.pid})")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GUARD_GATEWAY_", "GUARD_URL"))}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=1.0).status_code < 500:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not answer {self.ready_path} in {timeout} s; see {self.log}")

    def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def free_port() -> int:
    from deploy.launcher import free_port  # imported here: the fakes' own processes start without it

    return free_port()


def fake_guard(
    workdir: Path,
    *,
    verdict: str = "marked",
    delay: float = 0.0,
    slots: int | None = None,
    record: Path | None = None,
    port: int | None = None,
) -> Service:
    port = port or free_port()
    argv = [sys.executable, "-m", "reliability.services", "guard", "--port", str(port), "--verdict", verdict]
    argv += ["--delay", str(delay)] + (["--slots", str(slots)] if slots else [])
    argv += ["--record", str(record)] if record else []
    return Service("fake guard", argv, port, "/v1/models", workdir / f"guard-{port}.log")


def fake_upstream(workdir: Path, *, words: int = 60, token_interval: float = 0.01) -> Service:
    port = free_port()
    argv = [sys.executable, "-m", "reliability.services", "upstream", "--port", str(port)]
    argv += ["--words", str(words), "--token-interval", str(token_interval)]
    return Service("fake upstream", argv, port, "/v1/models", workdir / f"upstream-{port}.log")


def gateway(workdir: Path, guard_url: str, upstream_url: str | None = None, **settings: str) -> Service:
    port = free_port()
    argv = [sys.executable, "-m", "guard_gateway", "serve", "--guard-url", guard_url, "--port", str(port)]
    argv += ["--host", "127.0.0.1"] + (["--upstream-url", upstream_url] if upstream_url else [])
    base = {"guard.max_retries": "0", "guard.ready_ttl_seconds": "0", "guard.chunk": "false"}
    for dotted, value in {**base, **settings}.items():
        argv += ["--set", f"{dotted}={value}"]
    return Service("gateway", argv, port, "/health", workdir / f"gateway-{port}.log")


class InProcessGateway:
    """The gateway app under uvicorn in a thread of this process: starts in a fraction of a second (the
    imports are paid once); its log records go to `log` as they would to a subprocess's stderr."""

    def __init__(self, workdir: Path, guard_url: str, upstream_url: str | None = None, **settings: str) -> None:
        import uvicorn

        from guard_gateway import create_app, load_config

        self.port = free_port()
        base = {
            "guard.url": guard_url,
            "guard.max_retries": "0",
            "guard.ready_ttl_seconds": "0",
            "guard.chunk": "false",
        }
        if upstream_url:
            base["upstream.url"] = upstream_url
        self.config = load_config(overrides={**base, **settings}, environ={})
        self.log = workdir / f"gateway-{self.port}.log"
        app = create_app(self.config)
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, access_log=False, lifespan="on")
        )
        self.thread: threading.Thread | None = None
        self.handler: logging.Handler | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return os.getpid()

    def start(self, timeout: float = 30.0) -> InProcessGateway:
        self.handler = logging.FileHandler(self.log)
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        for name in LOGGERS:
            logging.getLogger(name).addHandler(self.handler)
        self.thread = threading.Thread(target=self.server.run, name=f"gateway-{self.port}", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the in-process gateway did not start; see {self.log}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=15)
        if self.handler is not None:
            for name in LOGGERS:
                logging.getLogger(name).removeHandler(self.handler)
            self.handler.close()


def descendants() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True) if child.is_running()}


def orphans(before: set[int]) -> list[int]:
    """Processes started since `before` that are still alive (zombies reaped first)."""
    alive = []
    for pid in descendants() - before:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            continue
    return alive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability.services", description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["guard", "upstream"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--verdict", choices=["unsafe", "marked", "injection"], default="marked")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--slots", type=int)
    parser.add_argument("--record")
    parser.add_argument("--words", type=int, default=60)
    parser.add_argument("--token-interval", type=float, default=0.01)
    return _serve(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
