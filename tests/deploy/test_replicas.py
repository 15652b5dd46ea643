"""`python -m deploy serve --replicas N`: argument errors, placement of each replica, the router's command."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import psutil
import pytest

from deploy.__main__ import main as deploy_main
from deploy.launcher import LaunchError, free_port
from deploy.profiles import load_profile
from deploy.replicas import ROUTER_POLICIES, ReplicaSet, RouterServer, cpu_shares, replica_env, router_command
from reliability.services import fake_guard


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("replicas", ["0", "-3"])
def test_fewer_than_one_replica_is_refused(replicas: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert deploy_main(["serve", "--profile", "cpu", "--replicas", replicas]) == 2
    assert error_line(capsys) == f"error: --replicas must be 1 or more, not {replicas}"


def test_a_router_policy_without_replicas_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert deploy_main(["serve", "--profile", "cpu", "--router-policy", "round_robin"]) == 2
    assert "--router-policy needs --replicas 2 or more" in error_line(capsys)


def test_an_unknown_router_policy_is_an_argument_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        deploy_main(["serve", "--replicas", "2", "--router-policy", "fastest"])
    assert exited.value.code == 2
    assert "invalid choice: 'fastest'" in capsys.readouterr().err


def test_more_cpu_replicas_than_cores_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("deploy.replicas.os.sched_getaffinity", lambda pid: {0, 1})
    assert deploy_main(["serve", "--profile", "cpu", "--replicas", "3", "--no-gateway"]) == 2
    assert "3 CPU replicas need at least 3 cores, this process may use 2" in error_line(capsys)


def test_more_replicas_than_the_most_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert deploy_main(["serve", "--profile", "cpu", "--replicas", "65", "--no-gateway"]) == 2
    assert error_line(capsys) == "error: --replicas must lie between 1 and 64, not 65"


def test_gpu_replicas_need_a_gpu_each() -> None:
    with pytest.raises(LaunchError, match="3 replicas of the gpu profile need 3 GPUs \\(one each\\), 2 found"):
        replica_env(load_profile("gpu"), 3, gpus=2, cores=[0, 1])
    assert replica_env(load_profile("gpu"), 2, gpus=4, cores=[0]) == [
        {"CUDA_VISIBLE_DEVICES": "0"},
        {"CUDA_VISIBLE_DEVICES": "1"},
    ]


def test_cpu_replicas_get_disjoint_cores_and_a_share_of_the_kv_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cpu_shares(2, [1, 0]) == ["0", "1"]
    assert cpu_shares(3, list(range(8))) == ["0,1,2", "3,4,5", "6,7"]
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    envs = replica_env(load_profile("cpu"), 2, gpus=0, cores=[0, 1, 2, 3])
    assert [env["VLLM_CPU_OMP_THREADS_BIND"] for env in envs] == ["0,1", "2,3"]
    assert {env["VLLM_CPU_KVCACHE_SPACE"] for env in envs} == {"2"}  # the profile's 4 GiB, halved


def test_the_router_takes_the_port_and_the_replicas_the_next_ones() -> None:
    replicas = ReplicaSet(load_profile("cpu"), 2, policy="consistent_hash", host="127.0.0.1", port=9100)
    assert replicas.url == "http://127.0.0.1:9100"
    assert [server.url for server in replicas.servers] == ["http://127.0.0.1:9101", "http://127.0.0.1:9102"]
    command = replicas.router.command()
    at = command.index("--worker-urls")
    assert command[at + 1 : at + 3] == ["http://127.0.0.1:9101", "http://127.0.0.1:9102"]
    assert command[command.index("--policy") + 1] == "consistent_hash"


def test_every_policy_is_one_vllm_router_knows() -> None:
    import subprocess
    import sys

    usage = subprocess.run(
        [sys.executable, "-m", "vllm_router.launch_router", "--help"], capture_output=True, text=True, check=True
    ).stdout
    known = usage.split("--policy {", 1)[1].split("}", 1)[0].split(",")
    assert set(ROUTER_POLICIES) == set(known)
    with pytest.raises(LaunchError, match="unknown router policy 'fastest'"):
        router_command(["http://a"], host="127.0.0.1", port=1, policy="fastest", metrics_port=2)


def test_the_router_starts_once_its_replicas_answer_and_stops_with_nothing_left(tmp_path: Path) -> None:
    """RouterServer in front of two fake replicas (the marked fake guard over HTTP): ready when /health says
    they are healthy, routes a check with the client's key and conversation header passed through, and its
    stop leaves no process (it is spawned tied to the launcher)."""
    records = [tmp_path / "one.jsonl", tmp_path / "two.jsonl"]
    replicas = [fake_guard(tmp_path, record=record).start() for record in records]
    try:
        router = RouterServer([r.url for r in replicas], port=free_port(), policy="round_robin").start()
        try:
            pid = router.pid
            assert pid is not None
            body = {"model": "qwen3guard", "messages": [{"role": "user", "content": "UNSAFE"}], "max_tokens": 8}
            headers = {"Authorization": "Bearer key-1", "X-Session-ID": "conversation-1"}
            reply = httpx.post(f"{router.url}/v1/chat/completions", json=body, headers=headers, timeout=30)
            assert reply.status_code == 200, reply.text
            sent = [
                json.loads(line)["headers"]
                for record in records
                if record.is_file()
                for line in record.read_text().splitlines()
                if json.loads(line)["path"] == "/v1/chat/completions"
            ]
            assert [(h["authorization"], h["x-session-id"]) for h in sent] == [("Bearer key-1", "conversation-1")]
            assert "vllm_router_" in httpx.get(router.metrics_url, timeout=10).text
        finally:
            router.stop()
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        assert router.poll() is None  # stopped: no process held
    finally:
        for replica in replicas:
            replica.stop()
