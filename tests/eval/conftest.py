"""A fake guard endpoint (httpx.MockTransport) and small dataset files for the eval's unit tests."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from guard_client import AsyncGuardClient
from guard_client.testing import marked_fake

STANDIN_ROOT = "/models/qwen3guard-gen-standin-random-tiny-abc"
REAL_ROOT = "/models/Qwen3Guard-Gen-0.6B"


class FakeGuard:
    """The unit tests' fake vLLM answering by markers in the checked text (see `marked_reply`: 'UNSAFE',
    'CONTRO', 'GARBLE', 'REFUSE', 'NOREFUSAL'; 'BROKEN' -> HTTP 500), serving `root`."""

    def __init__(self, root: str = STANDIN_ROOT) -> None:
        self.root = root
        self.fake = marked_fake(root=root)

    @property
    def checked(self) -> list[str]:
        """The checked texts (the last message of each chat request), in the order they arrived."""
        return [body["messages"][-1]["content"] for body in self.fake.bodies("/v1/chat/completions")]

    def client(self) -> AsyncGuardClient:
        return AsyncGuardClient("http://fake-guard", transport=httpx.MockTransport(self.fake), max_retries=0)


@pytest.fixture
def fake_guard() -> FakeGuard:
    return FakeGuard()


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any] | str]) -> Path:
    """Rows are objects, or raw strings written verbatim as a line (for malformed input)."""
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def prompt_row(i: int, label: str, text: str = "", **extra: Any) -> dict[str, Any]:
    return {
        "id": f"p-{i}",
        "task": "prompt_harmfulness",
        "prompt": text or f"prompt {i}",
        "response": None,
        "label": label,
        **extra,
    }


def response_row(i: int, label: str, response: str, task: str = "response_harmfulness") -> dict[str, Any]:
    return {"id": f"r-{i}", "task": task, "prompt": f"prompt {i}", "response": response, "label": label}


@pytest.fixture
def jsonl(tmp_path: Path) -> Callable[[str, Iterable[Mapping[str, Any] | str]], Path]:
    def make(name: str, rows: Iterable[Mapping[str, Any] | str]) -> Path:
        return write_jsonl(tmp_path / name, rows)

    return make
