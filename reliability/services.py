"""The processes a scenario starts and kills: the project's public test doubles served over real HTTP in a
subprocess (guard_client.testing.FakeVLLM as the guard, guard_gateway.testing.FakeUpstream as the main LLM),
the gateway, and the accounting of what is left running.

    python -m reliability.services guard --port P [--verdict unsafe|marked|injection] [--delay S] [--slots N]
                                         [--record F]
    python -m reliability.services upstream --port P [--words N] [--token-interval S]

The fakes are httpx handlers served by `guard_client.testing.serve_forever` in a process of their own, so a
fault can SIGKILL, SIGSTOP and restart them like a real server. `--delay`/`--slots` give the guard a capacity
(slots / delay checks/s).
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import psutil

from guard_client import render_guard_prompt
from guard_client.testing import FakeVLLM, Handler, marked_failure, marked_reply, serve_forever, with_latency
from guard_gateway.testing import FakeUpstream

REPO = Path(__file__).resolve().parent.parent
LOGGERS = ("guard_gateway", "uvicorn", "httpx")
UNSAFE_ANSWER = "Safety: Unsafe\nCategories: Violent"


def recording(handler: Handler, record: Path) -> Handler:
    """`handler`, writing each request (path, headers, body) as a JSON line to `record` first."""

    async def answer(request: httpx.Request) -> httpx.Response:
        with record.open("a") as log:
            line = {
                "path": request.url.path,
                "headers": dict(request.headers),
                "body": request.content.decode("utf-8", "replace"),
            }
            log.write(json.dumps(line) + "\n")
        result = handler(request)
        return await result if inspect.isawaitable(result) else result

    return answer


#: What the scripted injection guard flags: an injected instruction (`reliability.injection` places it).
MARKER = "IGNORE-ALL-PREVIOUS-INSTRUCTIONS-7f3a"


def injection_reply(body: dict[str, Any]) -> str:
    """The scripted guard (a `FakeVLLM` reply): Unsafe when `MARKER` is anywhere in the conversation as the
    model's chat template renders it (what the guard model would read), Safe otherwise."""
    messages = body["messages"]
    flagged = MARKER in render_guard_prompt(messages)
    answer = "Safety: Unsafe\nCategories: Violent" if flagged else "Safety: Safe\nCategories: None"
    return answer + "\nRefusal: No" if messages[-1]["role"] == "assistant" else answer


def _guard_handler(verdict: str) -> Handler:
    if verdict == "unsafe":
        return FakeVLLM(reply=lambda body: UNSAFE_ANSWER)
    if verdict == "injection":
        return FakeVLLM(reply=injection_reply)
    return FakeVLLM(reply=marked_reply, fail=marked_failure)


def _upstream_handler(words: int, token_interval: float) -> Handler:
    answer = " ".join(f"word{i}" for i in range(words))
    return FakeUpstream(answers=[answer], token_interval=token_interval)


def _serve(args: argparse.Namespace) -> int:
    if args.kind == "guard":
        handler: Handler = with_latency(_guard_handler(args.verdict), args.delay, slots=args.slots)
        if args.record:
            handler = recording(handler, Path(args.record))
    else:
        handler = _upstream_handler(args.words, args.token_interval)
    serve_forever(handler, args.port)
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
