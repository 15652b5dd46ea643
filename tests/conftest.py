"""Shared fixtures. End-to-end tests get one real vLLM server (CPU build, tiny stand-in) per session."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

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


def golden_cases() -> list[tuple[str, list[dict[str, str]], str]]:
    cases = json.loads((GOLDEN / "cases.json").read_text())
    return [(name, case["messages"], (GOLDEN / name).read_text()) for name, case in cases.items()]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "guard_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.e2e)


#: The second name the session server answers to: the main LLM of the chat gateway's end-to-end tests.
MAIN_LLM_NAME = "main-llm"
#: The PEFT adapter the session server serves beside the base guard by vLLM's multi-LoRA: random weights
#: on the tiny stand-in (`deploy.adapters.build_random_adapter`, this seed), with this two-category policy.
TEST_ADAPTER = "acme"
TEST_ADAPTER_SEED = 20
TEST_ADAPTER_POLICY = """\
name: acme
categories:
  - name: Competitor Mention
    definition: Names or praises a competitor's product.
  - name: Investment Advice
    modes: [prompt]
    openai: illicit
"""


@pytest.fixture(scope="session")
def test_adapter_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test adapter's directory (adapter_config.json, adapter_model.safetensors, guard_policy.yaml)."""
    from deploy.adapters import build_random_adapter
    from deploy.standin import build_standin

    root = tmp_path_factory.mktemp("adapters")
    policy = root / "acme-policy.yaml"
    policy.write_text(TEST_ADAPTER_POLICY)
    return build_random_adapter(build_standin("tiny"), root / TEST_ADAPTER, policy, rank=8, seed=TEST_ADAPTER_SEED)


@pytest.fixture(scope="session")
def guard_server(test_adapter_dir: Path) -> Iterator[object]:
    """A real vLLM OpenAI server on the CPU serving the tiny stand-in, on a free port, and the test adapter
    beside it (`--enable-lora --lora-modules acme=...`).

    Set GUARD_TEST_URL to reuse a server you started yourself (it must serve the tiny stand-in
    as `qwen3guard` and `main-llm`, and the adapter `deploy.adapters.build_random_adapter` builds with
    TEST_ADAPTER_SEED as `acme`).
    """
    from deploy.launcher import GuardServer, free_port
    from deploy.profiles import load_profile

    if os.environ.get("GUARD_TEST_URL"):
        yield _External(os.environ["GUARD_TEST_URL"])
        return
    profile = load_profile("cpu")
    server = GuardServer(
        profile,
        model="standin:tiny",
        host="127.0.0.1",
        port=free_port(),
        # Dev mode adds POST /reset_prefix_cache, which the benchmark's runs use to start cold.
        env={"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_SERVER_DEV_MODE": "1"},
        # The same server also plays the main LLM behind the chat gateway (tests/gateway/test_chat_e2e.py).
        extra_args=["--served-model-name", profile.served_model_name, MAIN_LLM_NAME],
        adapter_specs=[f"{TEST_ADAPTER}={test_adapter_dir}"],
    )
    with server:
        yield server


class _External:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")


@pytest.fixture(scope="session")
def guard_url(guard_server: object) -> str:
    return str(guard_server.url)  # type: ignore[attr-defined]
