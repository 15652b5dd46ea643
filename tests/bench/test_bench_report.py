"""The benchmark's headline rows, ratios and reports, from a hand-made result (no server)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bench.arms import ARM_SPECS, ARMS, BASELINE, Arm, arm_label
from bench.flops import check_flops, guard_model_shape
from bench.machine import machine_limit
from bench.side_by_side import (
    BenchConfig,
    add_arguments,
    annotate_flops,
    bench_config,
    decode_share_summary,
    headline,
    verdict_first_vs_full,
    write_results,
)
from bench.side_by_side_report import bench_markdown


def cli(*argv: str) -> BenchConfig:
    """The configuration `python -m bench side-by-side ARGV` runs with."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return bench_config(parser.parse_args(argv))


#: A measured limit of 2000 GFLOP/s, from the measurement after the arms (the better one).
LIMIT = machine_limit(
    {
        "before": {"limit_gflop_per_s": 1500.0, "threads": 2, "device": "cpu", "shapes": []},
        "after": {
            "limit_gflop_per_s": 2000.0,
            "threads": 2,
            "device": "cpu",
            "shapes": [{"shape": [512, 1024, 3072], "best_gflop_per_s": 2000.0}],
        },
    }
)


def run(mode: str, concurrency: int, per_s: float, hit: float | None = None) -> dict[str, Any]:
    return {
        "mode": mode,
        "concurrency": concurrency,
        "items": 16,
        "checks_per_s": per_s,
        "latency_p50_s": 1.0,
        "latency_p95_s": 2.0,
        "errors": 0,
        "mean_prompt_tokens": 330.0,
        "mean_output_tokens": 9.0,
        "requests_per_check": 1.0,
        "prefix_cache_hit_rate": hit,
        "sent": "something",
    }


def result(
    share: dict[str, Any] | None = None, flops: bool = True, more_arms: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """A whole bench result, computed as the bench computes it, from hand-made runs of three arms (and `more_arms`)."""
    arms = [
        {"arm": Arm.TRANSFORMERS, "runs": [run("prompt", 1, 0.5), run("response", 1, 0.25)], "peak_rss_gib": 2.0},
        {
            "arm": Arm.TUNED,
            "runs": [run("prompt", 1, 1.0, 0.5), run("prompt", 16, 2.0, 0.55), run("response", 16, 1.0, 0.5)],
            "peak_rss_gib": 7.0,
        },
        {"arm": Arm.VERDICT_FIRST, "runs": [run("prompt", 16, 4.5, 0.62)], "peak_rss_gib": 7.0},
        *more_arms,
    ]
    data: dict[str, Any] = {
        "created": "2025-01-01T00:00:00+00:00",
        "machine": {"cpus": 2, "memory_gib": 23.4, "gpu": False, "vllm": "0.32.0", "transformers": "5.19.0"},
        "model": "/x/qwen3guard-gen-standin-random-full-abc",
        "standin": True,
        "note": "STAND-IN NOTE",
        "profile": {"name": "cpu"},
        "server_env_overrides": {},
        "server_arg_overrides": [],
        "workload": {
            "prompt": {"dataset": "t.jsonl", "items": 16, "harmful_items": 2, "baseline_items": 8, "output_tokens": 9},
            "response": {
                "dataset": "b.jsonl",
                "items": 16,
                "harmful_items": 9,
                "baseline_items": 8,
                "output_tokens": 13,
            },
        },
        "concurrency": 16,
        "arms": arms,
        "decode_share": share,
        "wall_s": 600.0,
    }
    if flops:  # a report from before the FLOP columns has neither
        data["model_shape"] = guard_model_shape().__dict__
        data["machine_limit"] = LIMIT
        annotate_flops(data)
    data["headline"] = headline(data)
    data["verdict_first_vs_full"] = verdict_first_vs_full(data)
    return data


def decode_share() -> dict[str, Any]:
    runs = [
        {**run("prompt", 16, 2.0, 0.58), "variant": "answer"},
        {**run("prompt", 16, 2.5, 0.58), "variant": "verdict-token"},
        {**run("prompt", 16, 7.0, 0.97), "variant": "verdict-token-cached"},
        {**run("response", 16, 1.0, 0.55), "variant": "answer"},
    ]
    return decode_share_summary(runs, 16)


def test_decode_share_compares_each_variant_with_the_whole_answer() -> None:
    share = decode_share()
    assert share["modes"]["prompt"] == {
        "answer": 2.0,
        "verdict-token": 2.5,
        "verdict-token-cached": 7.0,
        "verdict_token_vs_answer": 1.25,
        "verdict_token_cached_vs_answer": 3.5,
    }
    assert share["modes"]["response"] == {"answer": 1.0}  # nothing to compare with: no ratio invented
    text = bench_markdown(result(share))
    assert "## What verdict-first can gain on this machine" in text
    # 330 prompt tokens, 9 output: the whole answer at 58% hits costs check_flops(330, 191.4, 9).
    answer = check_flops(guard_model_shape(), 330, 330 * 0.58, 9) * 2.0 / 2000e9
    assert f"| prompt | 2.00 | {answer:.1%} | 2.50 |" in text
    assert "| 1.25× |" in text and "| 7.00 | 3.50× |" in text
    assert "| response | 1.00 |" in text and "| – | –× | – | – | –× | – |" in text
    assert "## What verdict-first can gain" not in bench_markdown(result())


def test_headline_takes_the_baseline_at_one_and_the_rest_at_the_benchmark_concurrency() -> None:
    rows = {(r["arm"], r["mode"]): r for r in result()["headline"]}
    assert set(rows) == {
        (Arm.TRANSFORMERS, "prompt"),
        (Arm.TRANSFORMERS, "response"),
        (Arm.TUNED, "prompt"),
        (Arm.TUNED, "response"),
        (Arm.VERDICT_FIRST, "prompt"),
    }
    assert rows[(Arm.TUNED, "prompt")]["x_baseline"] == 4.0
    assert rows[(Arm.TUNED, "response")]["x_baseline"] == 4.0
    assert rows[(Arm.VERDICT_FIRST, "prompt")]["x_baseline"] == 9.0
    assert rows[(Arm.TRANSFORMERS, "prompt")]["x_baseline"] == 1.0
    assert rows[(Arm.TUNED, "prompt")]["prefix_cache_hit_rate"] == 0.55  # the 16-in-flight run, not the c=1 one


def test_headline_rows_carry_the_fraction_of_the_measured_limit() -> None:
    rows = {(r["arm"], r["mode"]): r for r in result()["headline"]}
    shape = guard_model_shape()
    tuned = rows[(Arm.TUNED, "prompt")]  # 330 prompt tokens at 55% hits, 9 output, 2 checks/s
    flops = check_flops(shape, 330, 330 * 0.55, 9)
    assert tuned["uncached_tokens_per_check"] == round(330 * 0.45 + 9, 1)
    assert tuned["gflop_per_check"] == round(flops / 1e9, 3)
    assert tuned["fraction_of_limit"] == round(flops * 2.0 / 2000e9, 4)
    baseline = rows[(Arm.TRANSFORMERS, "prompt")]  # no prefix cache: every prompt token computed
    assert baseline["uncached_tokens_per_check"] == 339.0
    assert baseline["fraction_of_limit"] == round(check_flops(shape, 330, 0, 9) * 0.5 / 2000e9, 4)
    assert LIMIT["limit_gflop_per_s"] == 2000.0  # the better of before and after


def test_verdict_first_is_compared_with_full_generation_on_the_same_server() -> None:
    comparison = verdict_first_vs_full(result())
    assert comparison == {
        "prompt": {
            "concurrency": 16,
            "verdict_first_checks_per_s": 4.5,
            "full_generation_checks_per_s": 2.0,
            "speedup": 2.25,
        }
    }


def test_markdown_report_states_the_stand_in_and_the_ratios(tmp_path: Path) -> None:
    write_results(result(), tmp_path)
    text = (tmp_path / "bench.md").read_text()
    # Three of the arms ran: the header names the command that runs just those.
    command = 'make bench BENCH_FLAGS="--arms transformers tuned verdict-first"'
    assert text.startswith(f"# Guard benchmark: where the throughput comes from\n\nMeasured by `{command}` on 2 CPU")
    assert "> **STAND-IN NOTE**" in text
    tuned = check_flops(guard_model_shape(), 330, 330 * 0.55, 9) * 2.0 / 2000e9
    assert f"| this project's serving profile | prompt | 16 | 2.00 | 4.0× | {tuned:.1%} |" in text
    assert "| profile + client, verdict-first | prompt | 16 | 4.50 | 9.0× |" in text
    assert "**2000 GFLOP/s (bf16 matrix products, 2 CPU threads)**" in text
    assert "torch.matmul 512×1024×3072 2000" in text
    assert "| prompt | 16 | 4.50 | 2.00 | 2.2× |" in text
    assert "(bench.png)" in text
    assert "55%" in text and "62%" in text


def test_a_report_from_before_the_flop_columns_still_renders(tmp_path: Path) -> None:
    old = result(flops=False)
    text = bench_markdown(old)
    assert "| this project's serving profile | prompt | 16 | 2.00 | 4.0× | – | – | – |" in text
    assert "GFLOP/s (bf16" not in text
    write_results(old, tmp_path)
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("with_share", [False, True])
def test_plot_is_written_as_png(tmp_path: Path, with_share: bool) -> None:
    path = tmp_path / "bench.png"
    write_results(result(decode_share() if with_share else None), tmp_path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_arm_has_one_row_in_the_table_and_one_baseline() -> None:
    assert set(ARM_SPECS) == set(Arm)
    assert tuple(Arm) == ARMS
    assert [arm for arm, spec in ARM_SPECS.items() if spec.baseline] == [BASELINE] == [Arm.TRANSFORMERS]
    assert arm_label("tuned") == ARM_SPECS[Arm.TUNED].label  # a name read back from JSON
    assert arm_label("retired-arm") == "retired-arm"  # an old report's arm keeps its name
    assert Arm("verdict-first") is Arm.VERDICT_FIRST and f"{Arm.DECODE_SHARE}" == "decode-share"


def test_the_cli_offers_the_arms_of_the_table() -> None:
    config = cli("--arms", "tuned", "verdict-first")
    assert config.arms == (Arm.TUNED, Arm.VERDICT_FIRST)
    assert cli().arms == ARMS
    with pytest.raises(SystemExit):
        cli("--arms", "no-such-arm")


def test_the_headline_concurrency_is_always_part_of_the_sweep() -> None:
    config = cli("--sweep", "1,4", "--concurrency", "8", "--profile", "cpu")
    assert config.sweep == (1, 4, 8) and config.concurrency == 8
    assert config.model == "standin:full"
    config = cli("--server-env", "A=1", "--server-env", "B=x=y")
    assert config.server_env == {"A": "1", "B": "x=y"}
    with pytest.raises(SystemExit):
        cli("--sweep", "0,4")
