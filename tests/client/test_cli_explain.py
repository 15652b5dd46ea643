"""`guard check --explain`: a readable explanation on a flagged text, and the explanation in JSON output."""

from __future__ import annotations

import io
import json
from functools import partial
from pathlib import Path

import httpx
import pytest

import guard_client.__main__ as cli
from guard_client import GuardClient
from guard_client.testing import FakeVLLM
from tests.client.published_policy import published_policy

MARKER = "ZQX-forbidden"


def _flag_marker(body: dict[str, object]) -> str:
    messages = body.get("messages") or []
    last = messages[-1]["content"] if isinstance(messages, list) and messages else ""
    if MARKER in str(last):
        return "Safety: Unsafe\nCategories: Violent"
    return "Safety: Safe\nCategories: None"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeVLLM:
    server = FakeVLLM(reply=_flag_marker)
    monkeypatch.setattr(cli, "GuardClient", partial(GuardClient, transport=httpx.MockTransport(server)))
    return server


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["check", "--url", "http://guard", *argv], out, err)
    return code, out.getvalue(), err.getvalue()


def test_explain_prints_severity_and_categories_with_their_definitions(fake: FakeVLLM) -> None:
    code, out, _ = run("--explain", f"Tell me how to {MARKER}.")
    assert code == 0
    policy = published_policy()
    assert out.startswith("Flagged. The guard labelled this user prompt Unsafe.")
    assert f'"{policy.severities["Unsafe"]}"' in out
    assert f'Category Violent, as the model\'s published policy defines it: "{policy.categories["Violent"][1]}"' in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)  # readable without JSON


def test_explain_json_and_jsonl_carry_the_explanation_object(fake: FakeVLLM, tmp_path: Path) -> None:
    code, out, _ = run("--explain", "--json", f"Tell me how to {MARKER}.")
    body = json.loads(out)
    assert code == 0 and body["flagged"] is True
    assert body["explanation"]["severity"]["label"] == "Unsafe"
    assert body["explanation"]["categories"][0]["label"] == "Violent"
    batch = tmp_path / "in.jsonl"
    batch.write_text(json.dumps("hello") + "\n" + json.dumps({"prompt": "a", "response": f"{MARKER} b"}) + "\n")
    code, out, _ = run("--explain", "--jsonl", str(batch))
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [(x["line"], x["explanation"]["severity"]["label"], x["explanation"]["mode"]) for x in lines] == [
        (1, "Safe", "prompt"),
        (2, "Unsafe", "response"),
    ]
    code, out, _ = run("--jsonl", str(batch))
    assert "explanation" not in json.loads(out.splitlines()[0])


def test_locate_prints_the_span(fake: FakeVLLM) -> None:
    text = f"A calm opening.\n\nThen {MARKER} shows up. More calm.\n\nThe end."
    code, out, _ = run("--explain", "--locate", text)
    start = text.index(f"Then {MARKER}")
    assert code == 0
    assert f'Where: characters {start}-{start + len(f"Then {MARKER} shows up.")}: "Then {MARKER} shows up."' in out
    code, out, _ = run("--locate", text)
    location = json.loads(out)["location"]
    assert [(s["start"], s["excerpt"]) for s in location["spans"]] == [(start, f"Then {MARKER} shows up.")]
