"""The benchmark's custom-policy arms: what each asks the server for, and their comparison with the base
model on a plain server (hand-made results, no server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.arms import ARM_SPECS, ARMS, MERGED_TARGET, POLICY_ADAPTERS, POLICY_ARMS, Arm, Server
from bench.side_by_side import policy_summary, report_command, write_results
from bench.side_by_side_report import bench_markdown
from tests.bench.test_bench_report import cli, result, run


def policy_result() -> dict[str, Any]:
    policy_arms = [
        {"arm": Arm.LORA_BASE, "runs": [run("prompt", 16, 1.8)], "peak_rss_gib": 7.5},
        {"arm": Arm.LORA_ADAPTER, "runs": [run("prompt", 16, 0.3)], "peak_rss_gib": 7.5},
        {"arm": Arm.LORA_MIXED, "runs": [run("prompt", 16, 0.5)], "peak_rss_gib": 7.5},
        {"arm": Arm.MERGED, "runs": [run("prompt", 16, 1.96), run("response", 16, 0.9)], "peak_rss_gib": 7.0},
    ]
    data = result(more_arms=policy_arms)
    data["custom_policies"] = policy_summary(data)
    return data


def test_the_policy_arms_ask_for_the_base_one_adapter_and_all_three_in_turn() -> None:
    assert ARM_SPECS[Arm.LORA_BASE].models == () and ARM_SPECS[Arm.MERGED].models == ()
    assert ARM_SPECS[Arm.LORA_ADAPTER].models == POLICY_ADAPTERS[:1]
    assert ARM_SPECS[Arm.LORA_MIXED].models == ("qwen3guard", *POLICY_ADAPTERS)
    assert {ARM_SPECS[arm].server for arm in POLICY_ARMS} == {Server.LORA, Server.MERGED}
    config = cli("--arms", "tuned", "lora-mixed", "merged")
    assert config.arms == (Arm.TUNED, Arm.LORA_MIXED, Arm.MERGED)


def test_each_policy_arm_is_set_against_the_plain_base_with_its_fraction_of_the_limit() -> None:
    summary = policy_summary(policy_result())
    prompt = summary["prompt"]
    assert prompt["plain_base_checks_per_s"] == 2.0
    assert {arm: row["x_plain_base"] for arm, row in prompt["arms"].items()} == {
        "lora-base": 0.9,
        "lora-adapter": 0.15,
        "lora-mixed": 0.25,
        "merged": 0.98,
    }
    assert prompt["arms"]["merged"]["fraction_of_limit"] > prompt["arms"]["lora-adapter"]["fraction_of_limit"] > 0
    assert prompt["merged_target"] == {"x_plain_base": 0.98, "target": MERGED_TARGET, "met": True}
    # Response moderation: the merged adapter at 0.9 of the plain base misses the target.
    assert summary["response"]["merged_target"]["met"] is False


def test_the_report_has_a_custom_policy_section(tmp_path: Path) -> None:
    data = policy_result()
    text = bench_markdown(data)
    assert "## Custom policies" in text
    assert "| prompt | LoRA server: one adapter | 16 | 0.30 | 0.15× |" in text
    assert "prompt 0.98× (met); response 0.90× (missed)" in text
    write_results(data, tmp_path)
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_policy_arms_no_section() -> None:
    data = result()
    assert policy_summary(data) == {}
    assert "## Custom policies" not in bench_markdown(data)


def test_a_run_of_some_arms_names_the_command_that_runs_them(tmp_path: Path) -> None:
    assert report_command(list(ARMS)) == "make bench"
    assert report_command([Arm.TUNED, *POLICY_ARMS]) == "make bench-policies"
    assert report_command([Arm.TUNED, Arm.MERGED]) == 'make bench BENCH_FLAGS="--arms tuned merged"'
    data = policy_result()
    data["arms"] = [entry for entry in data["arms"] if entry["arm"] in {Arm.TUNED, *POLICY_ARMS}]
    write_results(data, tmp_path)
    assert "Measured by `make bench-policies` on" in (tmp_path / "bench.md").read_text()
