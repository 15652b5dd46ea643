"""A fake guard endpoint (httpx.MockTransport) and small dataset files for the eval's unit tests."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from guard_client import AsyncGuardClient

STANDIN_ROOT = "/models/qwen3guard-gen-standin-random-tiny-abc"
REAL_ROOT = "/models/Qwen3Guard-Gen-0.6B"


class FakeGuard:
    """Answers like vLLM serving the guard. The verdict comes from markers in the checked text:
    'UNSAFE' -> Unsafe, 'CONTRO' -> Controversial, 'GARBLE' -> unparseable output,
    'BROKEN' -> HTTP 500, 'NOREFUSAL' -> a response verdict without its Refusal line,
    'REFUSE' -> Refusal: Yes; anything else is Safe."""

    def __init__(self, root: str = STANDIN_ROOT) -> None:
        self.root = root
        self.checked: list[str] = []
        #: Raise this after that many chat requests were answered (simulates an interruption).
        self.interrupt_after: int | None = None

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "qwen3guard", "root": self.root, "max_model_len": 8192}]})
        assert request.url.path == "/v1/chat/completions", request.url.path
        if self.interrupt_after is not None and len(self.checked) >= self.interrupt_after:
            raise Interrupted("stopped by the test")
        body = json.loads(request.content)
        text = body["messages"][-1]["content"]
        self.checked.append(text)
        if "BROKEN" in text:
            return httpx.Response(500, json={"error": {"message": "engine died"}})
        response_mode = body["messages"][-1]["role"] == "assistant"
        if "GARBLE" in text:
            content = "\n\n\n"
        else:
            safety = "Unsafe" if "UNSAFE" in text else "Controversial" if "CONTRO" in text else "Safe"
            category = "Violent" if safety != "Safe" else "None"
            content = f"Safety: {safety}\nCategories: {category}"
            if response_mode and "NOREFUSAL" not in text:
                content += f"\nRefusal: {'Yes' if 'REFUSE' in text else 'No'}"
        return httpx.Response(
            200, json={"choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}
        )

    def client(self) -> AsyncGuardClient:
        return AsyncGuardClient("http://fake-guard", transport=httpx.MockTransport(self.handler), max_retries=0)


class Interrupted(Exception):
    """Stands in for Ctrl-C or a crash in the middle of a run."""


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
