"""The chat benchmark's report: which target each row meets, the relay read apart from the check, files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.gateway_chat import _has_content, write_chat_report


def _whole(output_ms: float, added: float, output_check: float) -> dict[str, Any]:
    arm = {"p50": 300.0, "p95": 301.0, "n": 3}
    return {
        "guard_ms": 40.0,
        "output_ms": output_ms,
        "upstream_ms": 300.0,
        "arms": {"unguarded": arm, "parallel": {**arm, "p50": 300.0 + added}, "pre_call": arm},
        "parallel_added_ms": added,
        "output_check_round_trip_ms": output_check,
        "input_rail_added_ms": added - output_check,
        "target_ms": 5.0,
        "met": added - output_check <= 5.0,
    }


def _stream_row(arm: str, window: int | None, first: float, total: float) -> dict[str, Any]:
    return {"arm": arm, "window": window, "first_token_p50_ms": first, "total_p50_ms": total, "n": 3}


def _result(first_token: float, relay_first_token: float) -> dict[str, Any]:
    rows = [
        _stream_row("unguarded", None, 20.0, 4000.0),
        _stream_row("hold_back", 256, first_token, 4040.0),
        _stream_row("hold_back, instant guard", 256, relay_first_token, 4004.0),
    ]
    for row in rows[1:]:
        row["total_ratio"] = row["total_p50_ms"] / 4000.0
        row["first_token_added_ms"] = row["first_token_p50_ms"] - 20.0
    standin_rows = [_stream_row("unguarded", None, 900.0, 9000.0), _stream_row("hold_back", 64, 2500.0, 14000.0)]
    standin_rows[1].update(total_ratio=14000.0 / 9000.0, first_token_added_ms=1600.0)
    return {
        "machine": "test",
        "whole": [_whole(40.0, 46.0, 42.0), _whole(0.0, 7.5, 1.5), _whole(0.0, 8.0, 1.0)],
        "streams": {
            "guard_ms": 40.0,
            "check_round_trip_ms": 42.0,
            "relay_ms": relay_first_token - 20.0,
            "tokens_per_s": 50,
            "answer_tokens": 200,
            "rows": rows,
        },
        "standin_streams": {"variant": "tiny", "answer_tokens": 64, "check_round_trip_ms": 700.0, "rows": standin_rows},
    }


def test_whole_answer_rows_subtract_one_measured_output_check(tmp_path: Path) -> None:
    write_chat_report(_result(66.0, 25.0), tmp_path)
    table = [line for line in (tmp_path / "bench_chat.md").read_text().splitlines() if line.startswith("| 40 |")]
    assert table[0].endswith("| 42.0 | 4.0 | <= 5 | met |")
    assert table[1].endswith("| 1.5 | 6.0 | <= 5 | **missed** |")
    assert table[2].endswith("| 1.0 | 7.0 | <= 5 | **missed** |")


def test_the_first_token_is_read_beyond_the_relay_and_strictly(tmp_path: Path) -> None:
    # 46 ms added = 5 ms relay + 41 ms waiting: within one 42 ms check; strictly, over by 4 ms.
    write_chat_report(_result(66.0, 25.0), tmp_path)
    text = (tmp_path / "bench_chat.md").read_text()
    assert (
        "first token +46 ms = 5.0 ms relay + 41.0 ms waiting for the check, against one check of 42.0 ms (met)" in text
    )
    assert "+46.0 against 42.0 ms (over by 4.0 ms)" in text
    # A first token that waits longer than one check beyond the relay is missed.
    write_chat_report(_result(70.0, 25.0), tmp_path)
    assert (
        "45.0 ms waiting for the check, against one check of 42.0 ms (**missed**)"
        in (tmp_path / "bench_chat.md").read_text()
    )


def test_report_files_carry_the_standin_arm(tmp_path: Path) -> None:
    result = _result(66.0, 25.0)
    write_chat_report(result, tmp_path)
    assert json.loads((tmp_path / "bench_chat.json").read_text()) == result
    text = (tmp_path / "bench_chat.md").read_text()
    assert "## (c) Streams from the tiny stand-in on the CPU: 64 tokens" in text
    assert "| hold_back | 64 | 2500 | 14000 | 1.556 | 1600 |" in text
    assert (tmp_path / "bench_chat.png").read_bytes()[:4] == b"\x89PNG"


def test_first_content_is_the_first_chunk_with_text() -> None:
    assert not _has_content('data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}')
    assert not _has_content("data: [DONE]")
    assert _has_content('data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}')
