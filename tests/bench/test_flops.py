"""The FLOP model of a check, against numbers worked out by hand."""

from __future__ import annotations

import pytest

from bench.flops import ModelShape, check_flops, guard_model_shape, matmul_shapes, measure_bf16_matmul, run_flops

#: Small enough to count every multiply by hand.
TOY = ModelShape(hidden=2, intermediate=3, layers=1, heads=1, kv_heads=1, head_dim=2, vocab=5)


def test_the_guard_shape_comes_from_the_stand_in_config() -> None:
    assert guard_model_shape() == ModelShape(
        hidden=1024, intermediate=3072, layers=28, heads=16, kv_heads=8, head_dim=128, vocab=151936
    )
    # q 1024x2048, k and v 1024x1024 each, o 2048x1024, gate/up/down 1024x3072 each.
    assert guard_model_shape().layer_weights == 2_097_152 + 2 * 1_048_576 + 2_097_152 + 3 * 3_145_728


def test_toy_check_counted_by_hand() -> None:
    # Layer weights: q 2*2 + k,v 2*(2*2) + o 2*2 + MLP 3*(2*3) = 4 + 8 + 4 + 18 = 34.
    assert TOY.layer_weights == 34
    # Prompt of 3 tokens, the first cached, 1 output token: 3 tokens computed -> 2*34*3 = 204; logits for
    # the 1 output: 2*2*5 = 20; attention at positions 2, 3, 4 over 2+3+4 = 9 keys: 4*1*2*9 = 72.
    assert check_flops(TOY, prompt_tokens=3, cached_tokens=1, output_tokens=1) == 204 + 20 + 72


def test_guard_check_counted_by_hand() -> None:
    shape = guard_model_shape()
    # 300 prompt tokens, 200 cached, 10 output: 110 tokens through 28 layers of 15,728,640 weights;
    # logits for 10 tokens; attention over positions 201..310 (28,105 keys) with 16 heads of 128.
    linear = 2 * 28 * 15_728_640 * 110  # 96,888,422,400
    logits = 2 * 1024 * 151_936 * 10  # 3,111,649,280
    attention = 4 * 28 * 16 * 128 * 28_105  # 6,446,612,480
    assert check_flops(shape, 300, 200, 10) == linear + logits + attention == 106_446_684_160


def test_an_uncached_check_costs_more_and_only_by_the_cached_tokens() -> None:
    shape = guard_model_shape()
    fresh, cached = check_flops(shape, 300, 0, 10), check_flops(shape, 300, 200, 10)
    attention_head = 4 * 28 * 16 * 128 * (200 * 201 // 2)  # positions 1..200
    assert fresh - cached == 2 * 28 * 15_728_640 * 200 + attention_head


@pytest.mark.parametrize(("prompt", "cached", "output"), [(10, 11, 1), (-1, 0, 1), (10, 0, -1)])
def test_impossible_token_counts_are_refused(prompt: int, cached: int, output: int) -> None:
    with pytest.raises(ValueError, match="cached"):
        check_flops(TOY, prompt, cached, output)


def test_a_run_gets_its_cached_share_from_the_hit_rate_and_its_fraction_from_the_limit() -> None:
    shape = guard_model_shape()
    run = {"mean_prompt_tokens": 400.0, "mean_output_tokens": 10.0, "prefix_cache_hit_rate": 0.5, "checks_per_s": 2}
    # 200 cached; 210 computed; attention over positions 201..410: (410*411 - 200*201) / 2 = 64,155 keys.
    flops = 2 * 28 * 15_728_640 * 210 + 2 * 1024 * 151_936 * 10 + 4 * 28 * 16 * 128 * 64_155
    assert flops == 202_796_072_960
    assert run_flops(shape, run, limit_flop_per_s=1e12) == {
        "uncached_tokens_per_check": 210.0,
        "gflop_per_check": 202.796,
        "achieved_gflop_per_s": 405.59,
        "fraction_of_limit": 0.4056,
    }
    no_cache = run_flops(shape, {**run, "prefix_cache_hit_rate": None}, limit_flop_per_s=None)
    assert no_cache["uncached_tokens_per_check"] == 410.0 and no_cache["fraction_of_limit"] is None


def test_the_limit_is_measured_on_layer_shaped_and_square_products() -> None:
    shapes = matmul_shapes(guard_model_shape())
    assert (512, 1024, 3072) in shapes and (512, 3072, 1024) in shapes and (2048, 2048, 2048) in shapes
    measured = measure_bf16_matmul(
        [(64, 64, 64), (32, 64, 128)], window_s=0.01, windows=2, device="cpu", kernels=["torch.matmul"]
    )
    assert measured["dtype"] == "bfloat16" and measured["threads"] >= 1
    assert [(s["kernel"], s["shape"]) for s in measured["shapes"]] == [
        ("torch.matmul", [64, 64, 64]),
        ("torch.matmul", [32, 64, 128]),
    ]
    assert measured["limit_gflop_per_s"] == max(s["best_gflop_per_s"] for s in measured["shapes"]) > 0
