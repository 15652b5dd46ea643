"""The gateway in front of the real vLLM server serving the random test adapter beside the tiny stand-in:
`/v1/moderations` for `model: acme` answers with acme's categories only, the base guard with its own."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from guard_client import POLICY_FILE, Category, GuardPolicy
from tests.conftest import TEST_ADAPTER
from tests.gateway.test_gateway_e2e import GatewayThread

pytestmark = pytest.mark.e2e

TEXTS = [f"Is ACME's phone number {i} better than ours, and should I buy its shares?" for i in range(12)]


def test_moderations_for_the_adapter_carry_only_its_policys_labels(lora_url: str, test_adapter_dir: Path) -> None:
    policy = GuardPolicy.load(test_adapter_dir / POLICY_FILE)
    models = f"{{{TEST_ADAPTER}: {{policy: {test_adapter_dir / POLICY_FILE}}}}}"
    with GatewayThread(**{"guard.url": lora_url, "models": models, "cache.enabled": "false"}) as gateway:
        assert httpx.get(f"{gateway.url}/ready", timeout=30).status_code == 200
        adapter = httpx.post(f"{gateway.url}/v1/moderations", json={"model": TEST_ADAPTER, "input": TEXTS}, timeout=120)
        base = httpx.post(f"{gateway.url}/v1/moderations", json={"input": TEXTS}, timeout=120)
    assert adapter.status_code == 200, adapter.text
    assert adapter.json()["model"] == TEST_ADAPTER and base.json()["model"] == "qwen3guard"
    allowed = set(policy.labels("prompt"))
    labels = [set(result["qwen3guard"]["labels"]) for result in adapter.json()["results"]]
    assert all(found <= allowed for found in labels), labels
    # The stand-in's random weights name labels at random; under the grammar only acme's can be written.
    assert any(labels), "no input was flagged with a label: the test proves nothing"
    base_labels = {label for result in base.json()["results"] for label in result["qwen3guard"]["labels"]}
    assert base_labels <= {category.value for category in Category}
