"""`guard screen --model NAME --policy FILE`: rows checked against a custom policy, explained by it, and a
resumed run with another policy refused."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import httpx

from guard_client import AsyncGuardClient, GuardPolicy, PolicyCategory, screen_command
from tests.fake_vllm import FakeVLLM

POLICY = GuardPolicy(
    name="acme",
    categories=(PolicyCategory(name="Competitor Mention", definition="Names or praises a competitor's product."),),
)


def reply(body: dict[str, Any]) -> str:
    if "BrandX" in body.get("prompt", "").rsplit("<BEGIN CONVERSATION>", 1)[-1]:
        return "Safety: Unsafe\nCategories: Competitor Mention"
    return "Safety: Safe\nCategories: None"


def run(argv: list[str], fake: FakeVLLM) -> tuple[int, str]:
    def make(url: str | None, **kwargs: Any) -> AsyncGuardClient:
        return AsyncGuardClient(url or "http://fake-guard", transport=httpx.MockTransport(fake), **kwargs)

    err = io.StringIO()
    code = screen_command([*argv, "--no-progress"], io.StringIO(), err, make_client=make)
    return code, err.getvalue()


def test_screen_checks_rows_against_the_policy_and_a_resume_keeps_it(tmp_path: Path) -> None:
    rows = tmp_path / "in.jsonl"
    rows.write_text(json.dumps({"text": "BrandX is great"}) + "\n" + json.dumps({"text": "hello"}) + "\n")
    policy_file = POLICY.save(tmp_path)
    out = tmp_path / "out"
    fake = FakeVLLM(reply=reply, model="acme")
    chosen = [str(rows), "--out", str(out), "--model", "acme", "--explain"]
    code, err = run([*chosen, "--policy", str(policy_file)], fake)
    assert code == 0, err
    verdicts = [json.loads(line) for line in (out / "verdicts.jsonl").read_text().splitlines()]
    assert [v["categories"] for v in verdicts] == [["Competitor Mention"], []]
    assert verdicts[0]["explanation"]["categories"][0]["defined_by"] == "policy 'acme'"
    assert "/v1/chat/completions" not in fake.paths()
    code, err = run(chosen, fake)  # the same run directory, the published policy: not comparable
    assert code == 1 and "option policy" in err


def test_screen_with_a_bad_policy_file_is_exit_2_and_one_line(tmp_path: Path) -> None:
    rows = tmp_path / "in.jsonl"
    rows.write_text(json.dumps({"text": "x"}) + "\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: acme\ncategories:\n  - name: None\n")
    fake = FakeVLLM()
    code, err = run([str(rows), "--out", str(tmp_path / "out"), "--policy", str(bad)], fake)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: {bad}: categories[0].name: must not be 'None'")
    assert fake.calls == []
