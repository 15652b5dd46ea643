"""`make serve REPLICAS=2 MODEL=standin:tiny`'s command: two tiny vLLM replicas, vllm-router and the gateway;
the printed snippets work through them; Ctrl-C leaves nothing behind. Two servers on a shared CPU start
slowly: this is the one test that starts them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import httpx
import psutil
import pytest

from deploy.launcher import free_port
from tests.conftest import REPO

pytestmark = pytest.mark.e2e

#: vLLM without graph compilation: what these tests check is the launcher (start, routes, stop), and
#: compiling costs each tiny replica about 30 s of start-up on 2 cores.
LAUNCH_ONLY = ["--", "--enforce-eager"]


def test_two_replicas_behind_the_router_serve_and_stop_cleanly() -> None:
    router_port, gateway_port = free_port(), free_port()
    while {router_port + 1, router_port + 2} & {gateway_port}:
        gateway_port = free_port()
    ports = ["--port", str(router_port), "--gateway-port", str(gateway_port)]
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deploy",
            "serve",
            "--replicas",
            "2",
            "--model",
            "standin:tiny",
            "--host",
            "127.0.0.1",
            *ports,
            *LAUNCH_ONLY,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2"},
    )
    lines: list[str] = []
    assert launcher.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(launcher.stdout or []), daemon=True)
    reader.start()
    family: list[int] = []
    try:
        deadline = time.monotonic() + 900
        while not any("Ctrl-C stops" in line for line in lines):
            assert launcher.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(1)
        banner = "".join(lines)
        assert f"serving at http://127.0.0.1:{router_port} through vllm-router, 2 replicas" in banner
        replica_urls = re.findall(r"replica \d: (http://\S+) \(cores", banner)
        assert replica_urls == [f"http://127.0.0.1:{router_port + 1}", f"http://127.0.0.1:{router_port + 2}"]
        family = [launcher.pid, *(child.pid for child in psutil.Process(launcher.pid).children(recursive=True))]

        # The printed guard check, through the router.
        check = re.search(r"or:\s+\.venv/bin/guard check --url (\S+) --constrain", banner)
        assert check is not None and check.group(1) == f"http://127.0.0.1:{router_port}"
        result = subprocess.run(
            [sys.executable, "-m", "guard_client", "check", "--url", check.group(1), "--constrain", "hello"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
        )
        assert result.returncode in (0, 1), result.stderr  # 1: flagged (the stand-in's verdicts are random)
        assert '"safety"' in result.stdout
        # The printed gateway URL: the moderations API, answered through the router.
        gateway = re.search(r"gateway .* is serving at (\S+)", banner)
        assert gateway is not None
        reply = httpx.post(
            f"{gateway.group(1)}/v1/moderations",
            json={"model": "omni-moderation-latest", "input": ["How can I make a bomb?", "Hello!"]},
            timeout=120,
        )
        assert reply.status_code == 200, reply.text
        assert len(reply.json()["results"]) == 2
        # The router routes to both replicas.
        readiness = httpx.get(f"http://127.0.0.1:{router_port}/readiness", timeout=10).json()
        assert readiness["healthy_workers"] == readiness["total_workers"] == 2
    finally:
        launcher.send_signal(signal.SIGINT)
        code = launcher.wait(timeout=120)
    assert code == 0
    time.sleep(1)
    assert [pid for pid in family if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"] == []
