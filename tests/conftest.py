"""Shared fixtures. End-to-end tests get one real vLLM server (CPU build, tiny stand-in) per session, and the
adapter tests a second one with vLLM's multi-LoRA (see `_lora_server`). Both start in the background once the
tests are collected, and the end-to-end tests run last."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
GOLDEN = SHARED / "reference" / "golden"
DATA = SHARED / "data" / "external"


def pinned_version(distribution: str) -> str:
    """The exact version `make install` installs, from constraints.txt (the one place pins live)."""
    for line in (REPO / "constraints.txt").read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep and name.strip().lower() == distribution.lower():
            return version.strip()
    raise LookupError(f"{distribution} is not pinned in constraints.txt")


def repository_files(*patterns: str) -> list[Path]:
    """The files git sees in the checkout (tracked, and untracked but not ignored), optionally by pathspec."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", *patterns],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [REPO / name for name in listed if (REPO / name).is_file()]


def interruptible(module: str, args: list[str]) -> subprocess.Popen[str]:
    """`python -m module args...` with SIGINT at its default: a shell that runs tests in the background
    ignores SIGINT, and children inherit that."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def interrupt_after(proc: subprocess.Popen[str], results: Path, lines: int, timeout: float) -> str:
    """Ctrl-C to `proc` once `results` holds `lines` lines; it must stop as an interrupted run that says how
    to resume. Returns what `results` held after the stop."""
    deadline = time.monotonic() + timeout
    while not (results.exists() and results.read_text().count("\n") >= lines):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, f"fewer than {lines} results in {timeout:.0f} s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "rerun the same command to resume" in stderr
    return results.read_text()


def golden_cases() -> list[tuple[str, list[dict[str, str]], str]]:
    cases = json.loads((GOLDEN / "cases.json").read_text())
    return [(name, case["messages"], (GOLDEN / name).read_text()) for name, case in cases.items()]


#: The fixtures that start a real vLLM server: a test that uses one is end-to-end.
SERVER_FIXTURES = ("guard_server", "lora_server")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if set(SERVER_FIXTURES) & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)
    # End-to-end tests last, each group in its own order: the unit tests run while the servers start.
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)


#: The tiny stand-in's test adapter (see TEST_ADAPTER), built once per session beside the LoRA server.
_ADAPTER_ROOT = tempfile.TemporaryDirectory(prefix="guard-test-adapters-")
#: Session servers starting in the background since the end of collection, by fixture name.
_STARTING: dict[str, Future[object]] = {}
_STARTER = ThreadPoolExecutor(max_workers=len(SERVER_FIXTURES), thread_name_prefix="vllm-start")


def on_server_start_thread() -> bool:
    """Whether this thread is starting a session server: a test that replaces a function for the whole process
    (time.sleep, say) lets that thread's calls through."""
    return threading.current_thread().name.startswith("vllm-start")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the vLLM servers the selected tests need, in the background: on 2 cores a server's start
    (a minute of mostly one busy core) then overlaps the unit tests, which run first and use one."""
    if session.config.option.collectonly:
        return
    needed = [name for name in SERVER_FIXTURES if any(name in getattr(i, "fixturenames", ()) for i in session.items)]
    if needed:
        from deploy.standin import build_standin

        build_standin("tiny")  # once, here: the servers and the unit tests then all find it built
    for name in needed:
        _STARTING[name] = _STARTER.submit(_SERVERS[name], dict(os.environ))


def pytest_sessionfinish() -> None:
    """Stop every server started in the background, used or not (a run that ended before its e2e tests)."""
    for future in _STARTING.values():
        with contextlib.suppress(BaseException):  # a failed start has failed its tests already
            getattr(future.result(), "stop", lambda: None)()
    _STARTER.shutdown()
    _ADAPTER_ROOT.cleanup()


#: The second name the session server answers to: the main LLM of the chat gateway's end-to-end tests.
MAIN_LLM_NAME = "main-llm"
#: The PEFT adapter the LoRA server serves beside the base guard by vLLM's multi-LoRA: random weights
#: on the tiny stand-in (`deploy.adapters.build_random_adapter`, this seed), with this two-category policy.
#: Seed 23 because its greedy answers name a category (Controversial, Investment Advice): with seeds 20-22 and
#: 24-27 a random adapter answers every prompt alike, Safe or with no category, and a label test proves nothing.
TEST_ADAPTER = "acme"
TEST_ADAPTER_SEED = 23
TEST_ADAPTER_POLICY = """\
name: acme
categories:
  - name: Competitor Mention
    definition: Names or praises a competitor's product.
  - name: Investment Advice
    modes: [prompt]
    openai: illicit
"""
#: The environment of every server the session starts (1 GiB of KV cache; dev mode adds POST
#: /reset_prefix_cache, which the benchmark's runs use to start cold).
SERVER_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_SERVER_DEV_MODE": "1"}


def build_test_adapter() -> Path:
    """The test adapter's directory (adapter_config.json, adapter_model.safetensors, guard_policy.yaml), built
    on first use."""
    from deploy.adapters import build_random_adapter
    from deploy.standin import build_standin

    root = Path(_ADAPTER_ROOT.name)
    if (root / TEST_ADAPTER).is_dir():
        return root / TEST_ADAPTER
    policy = root / "acme-policy.yaml"
    policy.write_text(TEST_ADAPTER_POLICY)
    return build_random_adapter(build_standin("tiny"), root / TEST_ADAPTER, policy, rank=8, seed=TEST_ADAPTER_SEED)


@pytest.fixture(scope="session")
def test_adapter_dir() -> Path:
    return build_test_adapter()


def _start_server(environ: dict[str, str], reuse: str, env: dict[str, str], **options: Any) -> object:
    """A real vLLM OpenAI server on the CPU serving the tiny stand-in (the `cpu` profile) on a free port for
    the session, or the server the environment variable `reuse` names. `environ`: the process environment when
    the start was asked for (a unit test running meanwhile may change os.environ for a while)."""
    from deploy.launcher import GuardServer
    from deploy.profiles import load_profile

    if environ.get(reuse):
        return _External(environ[reuse])
    server = GuardServer(
        load_profile("cpu"),
        model="standin:tiny",
        host="127.0.0.1",
        port=_server_port(),
        env={**environ, **env},
        **options,
    )
    return server.start()


def _server_port() -> int:
    """A free port below Linux's ephemeral range (32768-60999): a server binds its port only once it has
    loaded, a minute after it was chosen, and meanwhile the unit tests bind ports the kernel picks from that
    range, never from this one."""
    for port in random.sample(range(20000, 32000), 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32000 for the session's vLLM server")


def _guard_server(environ: dict[str, str]) -> object:
    """The session's vLLM server, as the guard (`qwen3guard`) and as the main LLM of the chat gateway's tests
    (`main-llm`).

    Set GUARD_TEST_URL to reuse a server you started yourself (it must serve the tiny stand-in as
    `qwen3guard` and `main-llm`).
    """
    from deploy.profiles import load_profile

    names = ["--served-model-name", load_profile("cpu").served_model_name, MAIN_LLM_NAME]
    return _start_server(environ, "GUARD_TEST_URL", SERVER_ENV, extra_args=names)


def _lora_server(environ: dict[str, str]) -> object:
    """The same tiny stand-in served with vLLM's multi-LoRA (`--enable-lora`): the test adapter `acme` beside
    the base guard, and room for the adapters a test loads while it runs (`/v1/load_lora_adapter`, which
    `guard tune`'s end-to-end test uses for the adapter it has just trained). Started only when a selected
    test asks for an adapter.

    A server of its own, not the session server, because vLLM's CPU backend turns graph compilation off on a
    server with LoRA enabled, for every request it serves: measured on the tiny stand-in with this suite's
    traffic (400 checks, 16 in flight, 2 cores), 8.4 constrained checks/s without LoRA against 3.5/s with it,
    which made the 2,000-row `guard screen` test alone take eight minutes.

    Set GUARD_TEST_LORA_URL to reuse a server you started yourself (the tiny stand-in as `qwen3guard`, the
    adapter `deploy.adapters.build_random_adapter` builds with TEST_ADAPTER_SEED as `acme`, and
    VLLM_ALLOW_RUNTIME_LORA_UPDATING=True).
    """
    adapter = build_test_adapter()
    return _start_server(
        environ,
        "GUARD_TEST_LORA_URL",
        {**SERVER_ENV, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"},
        adapter_specs=[f"{TEST_ADAPTER}={adapter}"],
    )


_SERVERS = {"guard_server": _guard_server, "lora_server": _lora_server}


def _started(name: str) -> object:
    """The server `name`, started in the background by `pytest_collection_finish` (or now, for a test that
    asked for it some other way); its start-up error, if it failed, fails each test that needs it."""
    if name not in _STARTING:
        _STARTING[name] = _STARTER.submit(_SERVERS[name], dict(os.environ))
    return _STARTING[name].result()


@pytest.fixture(scope="session")
def guard_server() -> object:
    return _started("guard_server")


@pytest.fixture(scope="session")
def lora_server() -> object:
    return _started("lora_server")


class _External:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")


@pytest.fixture(scope="session")
def guard_url(guard_server: object) -> str:
    return str(guard_server.url)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def lora_url(lora_server: object) -> str:
    return str(lora_server.url)  # type: ignore[attr-defined]
