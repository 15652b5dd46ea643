"""The gateway in front of the random-weight stand-in constrains its checks by itself (whose free output
never parses), says so in /ready, and keeps an explicit guard.constrain."""

from __future__ import annotations

import pytest

from guard_client import STANDIN_MARKER
from tests.fake_vllm import FakeVLLM
from tests.gateway.conftest import GatewayFactory

STANDIN_ROOT = f"/cache/standin/{STANDIN_MARKER}-tiny-741eb67ec3cb"


def constrained(fake: FakeVLLM) -> list[bool]:
    return ["structured_outputs" in body for body in fake.bodies("/v1/chat/completions")]


@pytest.mark.parametrize(
    ("root", "setting", "expected"),
    [
        (STANDIN_ROOT, None, True),
        ("/models/Qwen3Guard-Gen-0.6B", None, False),
        (STANDIN_ROOT, "false", False),
        ("/models/Qwen3Guard-Gen-0.6B", "true", True),
    ],
)
def test_constrained_decoding_follows_the_served_model_unless_set(
    make_gateway: GatewayFactory, fake: FakeVLLM, root: str, setting: str | None, expected: bool
) -> None:
    fake.root = root
    gateway = make_gateway(**({"guard.constrain": setting} if setting is not None else {}))
    assert gateway.post("/v1/moderations", json={"input": "hello"}).status_code == 200
    assert constrained(fake) == [expected]
    ready = gateway.get("/ready").json()
    assert ready["status"] == "ready" and ready["constrain"] is expected
    assert ("stand-in" in ready["detail"]) is (root == STANDIN_ROOT)


def test_ready_learns_it_before_any_check(make_gateway: GatewayFactory, fake: FakeVLLM) -> None:
    fake.root = STANDIN_ROOT
    gateway = make_gateway()
    ready = gateway.get("/ready").json()
    assert ready["constrain"] is True and "constrained decoding on" in ready["detail"]
    gateway.post("/v1/moderations", json={"input": "hello"})
    assert constrained(fake) == [True]


def test_a_guard_that_is_down_leaves_it_unlearnt_and_fails_as_the_policy_says(
    make_gateway: GatewayFactory, fake: FakeVLLM
) -> None:
    fake.root, fake.down = STANDIN_ROOT, True
    gateway = make_gateway()
    assert gateway.post("/v1/moderations", json={"input": "hello"}).status_code == 503
    assert gateway.get("/ready").json()["constrain"] is None
    fake.down = False
    assert gateway.post("/v1/moderations", json={"input": "hello"}).status_code == 200
    assert constrained(fake) == [True]
