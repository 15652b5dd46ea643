"""The gateway's launch path (`make serve`): its command, and a failed start that leaves nothing behind."""

from __future__ import annotations

import socket
from pathlib import Path

import psutil
import pytest

from deploy.__main__ import _gateway_banner
from deploy.launcher import GatewayServer, LaunchError, free_port, gateway_command
from guard_gateway.__main__ import build_parser, config_from_args


def test_the_command_parses_into_the_gateway_config() -> None:
    args = gateway_command("http://guard:8000", port=9001, host="127.0.0.1", standin=True)
    assert args[:3] == ["-m", "guard_gateway", "serve"]
    config = config_from_args(build_parser().parse_args(args[2:]))
    assert (config.guard.url, config.port, config.host, config.guard.constrain) == (
        "http://guard:8000",
        9001,
        "127.0.0.1",
        True,
    )
    assert "--set" not in gateway_command("http://guard:8000")


def test_a_gateway_whose_guard_never_answers_fails_start_up_and_leaves_no_process() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    server = GatewayServer(dead, port=free_port(), host="127.0.0.1", startup_timeout=8)
    with pytest.raises(LaunchError, match="not ready after 8 s"):
        server.start()
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(server.port) in (p.info["cmdline"] or [])]


def test_port_in_use() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(LaunchError, match=f"port {port} is already in use"):
            GatewayServer("http://127.0.0.1:1", port=port, host="127.0.0.1").start()


def test_the_printed_example_is_readable_python_saved_beside_the_logs(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "try_gateway.py"
    banner = _gateway_banner("http://127.0.0.1:8080", path)
    code = path.read_text()
    compile(code, str(path), "exec")
    assert 'base_url="http://127.0.0.1:8080/v1"' in code and "moderations.create" in code
    assert f".venv/bin/python {path}" in banner
    # The banner shows the same lines as the file, one statement a line, no shell quoting.
    shown = [line.strip() for line in banner.splitlines()]
    assert all(line.strip() in shown for line in code.splitlines() if line)
    assert "'\"'\"'" not in banner and max(len(line) for line in banner.splitlines()) <= 120
