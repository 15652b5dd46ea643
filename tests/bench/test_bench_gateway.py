"""The gateway benchmark's report logic: targets, rows and files."""

from __future__ import annotations

import json
from pathlib import Path

from bench.gateway import markdown, repeated, summarize, write_gateway_report

RESULT = {
    "machine": "test",
    "guard": "fake",
    "a": {"direct_checks_per_s": 100.0, "gateway_checks_per_s": 96.0, "in_flight": 16},
    "b": {
        "rate": 200.0,
        "requests": 10,
        "direct_p50_ms": 1.0,
        "direct_p99_ms": 3.0,
        "gateway_p50_ms": 4.0,
        "gateway_p99_ms": 9.0,
        "max_rps": 1200.0,
    },
    "c": {"checks_per_s": {"0": 10.0, "30": 12.0, "90": 60.0}, "speedup": {"0": 1.0, "30": 1.2, "90": 6.0}},
}


def test_rows_compare_each_measure_with_its_target() -> None:
    met = {row[0]: row[3] for row in summarize(RESULT)}
    assert met["(a) gateway / direct checks/s, 16 in flight"] is True  # 0.96 >= 0.95
    assert met["(b) added p50 at 200 req/s"] is False  # 3 ms > 2 ms
    assert met["(b) added p99 at 200 req/s"] is True  # 6 ms
    assert met["(b) single-input req/s, one worker"] is True
    assert met["(c) cache, 0% repeats"] is None
    assert met["(c) cache, 30% repeats"] is False and met["(c) cache, 90% repeats"] is True
    assert "**missed**" in markdown(RESULT)


def test_report_files(tmp_path: Path) -> None:
    write_gateway_report(dict(RESULT), tmp_path)
    assert json.loads((tmp_path / "bench_gateway.json").read_text()) == RESULT
    assert "| (c) cache, 90% repeats | 60.0 checks/s (6.00x) |" in (tmp_path / "bench_gateway.md").read_text()
    assert (tmp_path / "bench_gateway.png").read_bytes()[:4] == b"\x89PNG"


def test_repeated_inputs_have_the_asked_share_of_repeats() -> None:
    items = repeated(["p"], 2000, 0.3)
    share = 1 - len(set(items)) / len(items)
    assert 0.25 < share < 0.35
    assert len(set(repeated(["p"], 100, 0.0))) == 100
