"""`guard screen` end to end: 2,000 rows through the real vLLM server (tiny stand-in), interrupted with
SIGINT midway, resumed, and every row answered exactly once."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tests.conftest import interrupt_after, interruptible

ROWS = 2000
#: Every tenth row is a prompt and a response: both modes, without paying for 1,000 response checks.
RESPONSE_EVERY = 10


def test_sigint_midway_then_resume_answers_every_row_once(guard_url: str, tmp_path: Path) -> None:
    source = tmp_path / "rows.jsonl"
    with source.open("w") as handle:
        for i in range(ROWS):
            row = {"id": f"row-{i}", "prompt": f"Question {i}: how do I bake bread?"}
            if i % RESPONSE_EVERY == 1:
                row["response"] = f"Answer {i}: mix flour, water and yeast."
            handle.write(json.dumps(row) + "\n")
    out = tmp_path / "screened"
    results = out / "results.jsonl"
    args = [str(source), "--out", str(out), "--url", guard_url, "--constrain", "--concurrency", "16", "--no-progress"]

    before = interrupt_after(interruptible("guard_client", ["screen", *args]), results, ROWS // 4, timeout=300)
    interrupted_at = before.count("\n")
    assert ROWS // 4 <= interrupted_at < ROWS

    proc = interruptible("guard_client", ["screen", *args])
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    assert "stand-in" in stderr  # random weights are always announced

    assert results.read_text().startswith(before)  # append-only: the first run's records are untouched
    logged = [json.loads(line) for line in results.read_text().splitlines()]
    assert Counter(r["id"] for r in logged).most_common(1)[0][1] == 1  # no row checked twice
    verdicts = [json.loads(line) for line in (out / "verdicts.jsonl").read_text().splitlines()]
    assert [v["id"] for v in verdicts] == [f"row-{i}" for i in range(ROWS)]  # none lost, each once, in order
    assert all(v["safety"] in ("Safe", "Unsafe", "Controversial") for v in verdicts)  # constrained: all parse
    assert {v["mode"] for v in verdicts[1::RESPONSE_EVERY]} == {"response"}
    assert Counter(v["mode"] for v in verdicts) == {
        "response": ROWS // RESPONSE_EVERY,
        "prompt": ROWS - ROWS // RESPONSE_EVERY,
    }
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"]["decided"] == ROWS
    assert summary["throughput"]["already_done"] == interrupted_at
    assert summary["endpoint"]["standin"] is True
