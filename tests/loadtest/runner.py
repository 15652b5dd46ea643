"""`python -m loadtest run` as the load tests call it: a subprocess from the repository root."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def run_loadtest(out: Path, url: str, *args: str, timeout: float = 180) -> tuple[int, dict[str, Any]]:
    """The exit status and the summary of one run writing to `out`; its output tails explain a missing summary."""
    completed = subprocess.run(
        [sys.executable, "-m", "loadtest", "run", "--url", url, "--out", str(out), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert (out / "summary.json").is_file(), completed.stdout[-2000:] + completed.stderr[-3000:]
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return completed.returncode, summary
