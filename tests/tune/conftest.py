"""Fixtures of the `guard tune` tests: the shipped example's policy, small labelled files, the tiny stand-in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO

EXAMPLE = REPO / "guard_tune" / "examples" / "acme"


@pytest.fixture(scope="session")
def policy_file() -> Path:
    return EXAMPLE / "guard_policy.yaml"


@pytest.fixture(scope="session")
def tiny_base() -> str:
    from deploy.standin import build_standin

    return str(build_standin("tiny"))


def example_rows(count: int) -> list[dict[str, object]]:
    lines = (EXAMPLE / "data.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "id"} for line in lines[:count]]


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path
