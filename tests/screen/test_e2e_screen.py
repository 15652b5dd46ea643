"""`guard screen` end to end: 2,000 rows through the real vLLM server (tiny stand-in), interrupted with
SIGINT midway, resumed, and every row answered exactly once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROWS = 2000
#: Every tenth row is a prompt and a response: both modes, without paying for 1,000 response checks.
RESPONSE_EVERY = 10


def _screen_process(args: list[str]) -> subprocess.Popen[str]:
    # A shell that runs tests in the background ignores SIGINT, and children inherit that: restore it.
    return subprocess.Popen(
        [sys.executable, "-m", "guard_client", "screen", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


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

    proc = _screen_process(args)
    deadline = time.monotonic() + 300
    while not (results.exists() and results.read_text().count("\n") >= ROWS // 4):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "fewer than 500 rows in 300 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "rerun the same command to resume" in stderr
    before = results.read_text()
    interrupted_at = before.count("\n")
    assert ROWS // 4 <= interrupted_at < ROWS

    proc = _screen_process(args)
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
