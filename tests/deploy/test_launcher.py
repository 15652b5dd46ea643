"""`python -m deploy serve` fails fast and clearly, and leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from deploy.__main__ import main as deploy_main
from deploy.launcher import GuardServer, LaunchError, free_port
from deploy.profiles import load_profile
from tests.conftest import REPO


def serve(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy", "serve", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"},
    )


def vllm_processes_on(port: int) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "--port" in cmdline and str(port) in cmdline:
            found.append(process)
    return found


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_unknown_profile() -> None:
    result = serve("--profile", "tpu")
    assert result.returncode == 2
    assert one_error_line(result) == "error: unknown serving profile 'tpu'; choose one of: cpu, gpu, gpu-sidecar"


def test_missing_model_path() -> None:
    result = serve("--profile", "cpu", "--model", "/nonexistent/qwen3guard")
    assert result.returncode == 2
    line = one_error_line(result)
    assert "model path /nonexistent/qwen3guard does not exist" in line and "MODEL=" in line


def test_port_in_use() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = serve("--profile", "cpu", "--model", "standin:tiny", "--host", "127.0.0.1", "--port", str(port))
    assert result.returncode == 2
    assert f"port {port} is already in use" in one_error_line(result)


def test_server_that_dies_during_start_up_leaves_nothing_behind(tmp_path: Path) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    port = free_port()
    result = serve("--profile", "cpu", "--model", str(broken), "--host", "127.0.0.1", "--port", str(port))
    assert result.returncode == 2
    line = one_error_line(result)
    assert "vLLM exited with code" in line and "during start-up" in line and ".log" in line
    assert vllm_processes_on(port) == []


def test_launcher_refuses_a_bad_standin_variant() -> None:
    with pytest.raises(LaunchError, match="unknown stand-in variant 'huge'"):
        GuardServer(load_profile("cpu"), model="standin:huge", port=free_port()).start()


def test_a_second_signal_while_stopping_cannot_cut_the_stop_short(monkeypatch: pytest.MonkeyPatch) -> None:
    """`kill -TERM -<group>` on `make serve` reaches the launcher twice (make forwards its own): the second
    arrives while the servers stop and must not leave one of them running."""
    stopped: list[str] = []

    class Server:
        is_standin = False

        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def start(self) -> None:
            os.kill(os.getpid(), signal.SIGTERM)  # the first: while the guard starts

        def stop(self, grace: float = 0) -> None:
            os.kill(os.getpid(), signal.SIGTERM)  # the second: while it stops
            stopped.append("guard")

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    monkeypatch.setattr("deploy.__main__.GuardServer", Server)
    assert deploy_main(["serve", "--profile", "cpu", "--no-gateway"]) == 0
    assert stopped == ["guard"]
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers  # restored once stopped
