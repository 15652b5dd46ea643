"""The locate benchmark against its fake guard: it finds the harmful prompt within the bound and writes its report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench import locate


def test_locate_bench_writes_json_markdown_and_plot(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    locate.add_arguments(parser)
    args = parser.parse_args(["--items", "3", "--paragraphs", "1,8", "--latency-ms", "1", "--out", str(tmp_path)])
    code = locate.run(args)
    assert code == 0
    result = json.loads((tmp_path / "locate.json").read_text())
    rows = {r["paragraphs"]: r for r in result["rows"]}
    assert set(rows) == {1, 8}
    for row in rows.values():
        assert row["flagged_items"] == 3 and row["not_flagged"] == 0
        assert row["span_holds_the_harmful_prompt"] == 3
        assert 0 <= row["span_is_exactly_the_harmful_prompt"] <= 3
        assert row["within_bound"] and 0 < row["extra_checks_max"] <= row["bound_max"]
        assert row["latency_ms_p50_with"] > row["latency_ms_p50_without"]
    assert "| 8 | 3 |" in (tmp_path / "locate.md").read_text()
    assert (tmp_path / "locate.png").read_bytes()[:4] == b"\x89PNG"
