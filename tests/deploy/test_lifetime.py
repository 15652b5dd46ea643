"""No server outlives its launcher: a launcher killed with SIGKILL takes its servers' whole process groups
(vLLM's engine processes included) with it, and a start that finds its port held names the holder."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from deploy.launcher import GatewayServer, LaunchError, free_port, spawn_tied, stop_process_group
from tests.conftest import REPO
from tests.deploy.test_replicas_e2e import LAUNCH_ONLY

#: A stand-in launcher: starts a server group (a shell with a child of its own) and waits to be killed.
LAUNCHER = (
    "import sys, time\n"
    "from deploy.launcher import spawn_tied\n"
    "server = spawn_tied(['bash', '-c', 'sleep 600 & sleep 600 & wait'])\n"
    "print(server.pid, flush=True)\n"
    "time.sleep(600)\n"
)


def group(pgid: int) -> list[psutil.Process]:
    """The live processes of process group `pgid` (zombies left out)."""
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def wait_for(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_a_server_group_dies_with_a_launcher_killed_by_sigkill() -> None:
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert launcher.stdout is not None
        pgid = int(launcher.stdout.readline())
        # The shell, its two sleeps and the watchdog.
        assert wait_for(lambda: len(group(pgid)) == 4, 20), [p.cmdline() for p in group(pgid)]
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        assert wait_for(lambda: group(pgid) == [], 15), [p.cmdline() for p in group(pgid)]
    finally:
        launcher.kill()
        launcher.wait()


def test_a_stop_ends_the_group_and_its_watchdog_also_when_the_leader_exited_first() -> None:
    server = spawn_tied(["bash", "-c", "sleep 600 & exit 0"])
    server.wait()
    assert wait_for(lambda: len(group(server.pid)) == 2, 20)  # the orphaned sleep and the watchdog
    stop_process_group(server, grace=5)
    assert wait_for(lambda: group(server.pid) == [], 10)


def test_a_port_held_by_an_earlier_gateway_names_it(tmp_path: Path) -> None:
    port = free_port()
    earlier = subprocess.Popen(
        [sys.executable, "-m", "guard_gateway", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for(lambda: not port_free(port), 60)
        with pytest.raises(LaunchError) as refused:
            GatewayServer("http://127.0.0.1:1", port=port, host="127.0.0.1").start()
        message = str(refused.value)
        assert f"port {port} is already in use by an earlier instance of this project, pid {earlier.pid}" in message
        assert "guard_gateway serve" in message and f"kill {earlier.pid}" in message
    finally:
        earlier.terminate()
        earlier.wait(timeout=30)


@pytest.mark.e2e
def test_sigkill_to_deploy_serve_leaves_no_process_and_frees_both_ports() -> None:
    """`python -m deploy serve` on the tiny stand-in, killed with SIGKILL once both servers answer."""
    port, gateway_port = free_port(), free_port()
    command = [sys.executable, "-m", "deploy", "serve", "--model", "standin:tiny", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--gateway-port", str(gateway_port), *LAUNCH_ONLY]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    launcher = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    children: list[psutil.Process] = []
    try:
        assert launcher.stdout is not None
        for line in launcher.stdout:
            if "Ctrl-C stops both" in line:
                break
        assert launcher.poll() is None, "deploy serve exited before both servers answered"
        children = psutil.Process(launcher.pid).children(recursive=True)
        groups = {os.getpgid(child.pid) for child in children}
        members = [p for pgid in groups for p in group(pgid)]
        assert len(members) > len(children)  # the engine processes and the watchdogs are not its children
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        assert wait_for(lambda: all(group(pgid) == [] for pgid in groups), 30), [
            p.cmdline() for pgid in groups for p in group(pgid)
        ]
        assert port_free(port) and port_free(gateway_port)
    finally:
        launcher.kill()
        launcher.wait()
        for child in children:
            with contextlib.suppress(ProcessLookupError, psutil.Error):
                os.killpg(os.getpgid(child.pid), signal.SIGKILL)
