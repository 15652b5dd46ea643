"""`python -m loadtest run` with the gateway request types, seconds long, against a real gateway process in
front of the fake guard (guard_client.testing, answering Unsafe at once) and the fake main LLM
(guard_gateway.testing).

The fake guard flags everything, so the gateway's policy decides what the chat proxy does: `annotate` passes
every answer (completions and streams are measured), `block` refuses every prompt (blocks are measured apart).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.launcher import GatewayServer, free_port
from guard_client.testing import FakeVLLM, served_over_http
from guard_gateway.testing import FakeUpstream
from loadtest.summary import TTFT
from tests.loadtest.runner import run_loadtest


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[str, str]]:
    upstream = FakeUpstream(answers=["Pasta is boiled in salted water until al dente."], token_interval=0.001)
    guard = FakeVLLM(reply=lambda body: "Safety: Unsafe\nCategories: Violent")
    with served_over_http(guard, process=True) as guard_url, served_over_http(upstream) as upstream_url:
        yield guard_url, upstream_url + "/v1"


def run_through_gateway(tmp_path: Path, fakes: tuple[str, str], action: str) -> dict:
    guard_url, upstream_url = fakes
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"upstream:\n  url: {upstream_url}\nlogging:\n  access_log: false\n"
        f"policy:\n  prompt:\n    default: {action}\n  response:\n    default: {action}\n"
    )
    with GatewayServer(guard_url, port=free_port(), host="127.0.0.1", config=str(config)) as gateway:
        code, summary = run_loadtest(
            tmp_path / "out",
            guard_url,
            *("--steps", "2", "--step-seconds", "4", "--response-share", "0", "--stream-share", "0"),
            *("--gateway-url", gateway.url, "--gateway-moderation-share", "0.3", "--gateway-chat-share", "0.5"),
            timeout=120,
        )
    assert code == 0
    return summary


def entries(summary: dict) -> dict[tuple[str, str], dict]:
    return {(e["type"], e["name"]): e for e in summary["requests"]}


def test_moderations_and_guarded_chat_beside_the_direct_checks(tmp_path: Path, fakes: tuple[str, str]) -> None:
    summary = run_through_gateway(tmp_path, fakes, "annotate")
    found = entries(summary)
    for name in ("prompt check", "moderation (gateway)", "chat (gateway)", "chat (gateway, stream)"):
        assert found[("POST", name)]["requests"] > 0, name
        assert found[("POST", name)]["failures"] == 0, name
    # One time-to-first-token sample per released stream.
    ttft = found[(TTFT, "chat (gateway, stream)")]
    assert ttft["requests"] == found[("POST", "chat (gateway, stream)")]["requests"]
    assert not [name for _, name in found if name.endswith("blocked")]
    assert summary["checks"]["failures"] == summary["checks"]["parse_failures"] == 0
    assert summary["options"]["gateway_chat_share"] == 0.5


def test_blocks_are_successes_recorded_apart(tmp_path: Path, fakes: tuple[str, str]) -> None:
    found = entries(run_through_gateway(tmp_path, fakes, "block"))
    for name in ("chat (gateway) blocked", "chat (gateway, stream) blocked"):
        assert found[("POST", name)]["requests"] > 0 and found[("POST", name)]["failures"] == 0, name
    assert ("POST", "chat (gateway)") not in found and (TTFT, "chat (gateway, stream)") not in found
    assert found[("POST", "moderation (gateway)")]["failures"] == 0
