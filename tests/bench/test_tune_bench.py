"""`make bench-tune`'s FLOP model and report, checked by hand."""

from __future__ import annotations

from pathlib import Path

from bench.flops import ModelShape
from bench.tune import markdown, training_flops, write_report

# One layer, hidden 2, intermediate 3, one head of 2, vocabulary 5: 16 attention weights (q, k, v, o: 4 each)
# and 18 MLP weights (gate, up, down: 6 each) a token passes through.
SHAPE = ModelShape(hidden=2, intermediate=3, layers=1, heads=1, kv_heads=1, head_dim=2, vocab=5)


def test_a_step_costs_four_flops_per_weight_and_token_plus_the_head_where_it_is_computed() -> None:
    assert SHAPE.layer_weights == 34
    assert training_flops(SHAPE, tokens=10, answer_tokens=2) == 4 * 34 * 10 + 4 * 2 * 5 * 2
    assert training_flops(SHAPE, tokens=10, answer_tokens=2, naive=True) == 4 * 34 * 10 + 4 * 2 * 5 * 10


def result(losses: list[dict[str, object]]) -> dict[str, object]:
    training = {
        "batch": 4,
        "steps": 2,
        "examples_per_s": 0.1,
        "tokens_per_s": 30.0,
        "mean_prompt_tokens": 298.0,
        "achieved_gflop_per_s": 40.0,
        "fraction_of_bf16_limit": 0.8,
        "fraction_of_trained_dtype_limit": 0.2,
    }
    return {
        "model": "stand-in full",
        "cpu": "x86_64",
        "load_average": (1.0, 1.0, 1.0),
        "flop_model": "4 x ...",
        "trained_dtype": "float32",
        "trained_dtype_limit_gflop_per_s": 200.0,
        "limit": {"limit_gflop_per_s": 50.0},
        "training": training,
        "head_only_vs_naive": losses,
        "machine": {},
    }


def test_the_report_gives_each_models_speed_up_beside_its_flop_ratio(tmp_path: Path) -> None:
    losses: list[dict[str, object]] = [
        {
            "model": "stand-in full",
            "head_only_step_s": 49.0,
            "naive_step_s": 51.0,
            "speedup": 51 / 49,
            "flop_ratio": 1.34,
        },
        {"model": "stand-in tiny", "head_only_step_s": 0.1, "naive_step_s": 0.4, "speedup": 4.0, "flop_ratio": 30.2},
    ]
    text = markdown(result(losses))
    assert "| stand-in full | 49.00 | 51.00 | 1.0x | 1.3x |" in text
    assert "| stand-in tiny | 0.10 | 0.40 | 4.0x | 30.2x |" in text
    assert "| 0.10 | 30 | 40.0 | 50.0 | 80% | 200.0 | 20% |" in text
    written = write_report(result(losses), tmp_path)
    assert sorted(p.suffix for p in written) == [".json", ".md", ".png"]
