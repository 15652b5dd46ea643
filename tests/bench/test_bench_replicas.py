"""bench-replicas' own logic: the workload's windows, the projection's simulation, the verdicts and the report."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from bench.replicas import conversations, simulate, verdicts, write_report


def test_each_window_extends_the_last_and_conversations_differ() -> None:
    convs = conversations(3, 100, 4)
    for windows in convs:
        answers = [w[1]["content"] for w in windows]
        assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(answers))
        assert windows[-1][1]["content"] and len({w[0]["content"] for w in windows}) == 1
    assert len({windows[0][0]["content"] for windows in convs}) == 3


def tokens(conversations: int, windows: int, head: int = 256, step: int = 128) -> list[list[list[int]]]:
    """A shared head of `head` tokens, then per conversation its own tokens, `step` more each window."""
    return [
        [list(range(head)) + [10_000 * (c + 1) + i for i in range(step * (k + 1))] for k in range(windows)]
        for c in range(conversations)
    ]


def test_affinity_keeps_one_replicas_cache_and_round_robin_loses_it_as_replicas_grow() -> None:
    workload = tokens(8, 6)
    one = simulate(workload, 1, "affinity", 64)
    two = simulate(workload, 2, "affinity", 64)
    assert two["uncached_tokens_per_window"] <= one["uncached_tokens_per_window"] * 1.1
    uncached = [simulate(workload, n, "round_robin", 64)["uncached_tokens_per_window"] for n in (2, 8, 64)]
    assert uncached == sorted(uncached) and uncached[-1] > 2 * one["uncached_tokens_per_window"]
    # Only whole blocks are reused: the 50-token shared head none, a 130-token window after its 100-token one 64.
    blocks = [[list(range(100)), list(range(130))], [[*range(50), *[-1] * 50]]]
    assert simulate(blocks, 1, "affinity", 64)["hit_rate"] == pytest.approx(64 / 330)


def test_verdicts_and_the_report(tmp_path: Path) -> None:
    def run(name: str, replicas: int, hit: float, uncached: float) -> dict[str, object]:
        return {
            "name": name, "replicas": replicas, "hit_rate": hit, "uncached_tokens_per_window": uncached,
            "checks_per_s": 1.0, "p50_ms": 10.0, "p99_ms": 20.0,
        }  # fmt: skip

    runs = [run("one replica", 1, 0.8, 100), run("2 replicas, round_robin", 2, 0.6, 200)]
    runs.append(run("2 replicas, cache_aware", 2, 0.79, 105))
    found = verdicts(runs)
    assert not found["2 replicas, round_robin"]["meets_targets"]
    assert found["2 replicas, cache_aware"]["meets_targets"]
    result = {
        "workload": {"conversations": 2, "words": 10, "windows": 2, "concurrency": 1, "model": "tiny", "note": "x"},
        "runs": runs,
        "verdicts": found,
        "block_size": 64,
        "projection": [
            {"replicas": 1, "policy": "one replica", "hit_rate": 0.8, "uncached_tokens_per_window": 100},
            {"replicas": 2, "policy": "round_robin", "hit_rate": 0.6, "uncached_tokens_per_window": 200},
            {
                "replicas": 2,
                "policy": "cache_aware / consistent_hash",
                "hit_rate": 0.8,
                "uncached_tokens_per_window": 100,
            },
        ],
    }
    write_report(result, tmp_path)
    markdown = (tmp_path / "bench_replicas.md").read_text()
    assert "| 2 replicas, cache_aware | 2 | 79.0% | 105 | 98.8%, 1.05x (meets targets) |" in markdown
    assert "a simulation, not a measurement" in markdown
    assert (tmp_path / "bench_replicas.png").stat().st_size > 0
