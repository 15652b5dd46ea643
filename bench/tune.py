"""`make bench-tune`: what `guard tune` trains at on this machine, as a fraction of the machine's limit.

(a) LoRA training throughput (examples/s, tokens/s) on the FULL stand-in (Qwen3Guard-Gen-0.6B's architecture,
    random weights) in the dtype `guard tune` trains in here (bf16 on a GPU, float32 on the CPU, where few CPUs
    multiply bf16 natively), guard-length prompts of the shipped example; achieved FLOP/s against the bf16
    torch.matmul rate measured in the same run, and against the rate of the dtype trained in. FLOP model: LoRA
    training costs about 4 x non-embedding parameters x tokens (forward 2, the activation-gradient backward 2;
    frozen weights get no weight gradient), plus the LM head on the answer positions only.
(b) The head-only-where-needed loss against transformers' naive loss (full-vocabulary logits at every
    position): step time (forward + backward) of each on the same batches, side by side, ratio, beside the ratio
    of their FLOPs; on the full stand-in and on the tiny one (hidden 32), where the head is most of a step.

    python -m bench tune                                           # the full run (make bench-tune)
    python -m bench tune --variant tiny --steps 1 --batch 2        # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from bench.flops import ModelShape, matmul_shapes, measure_bf16_matmul
from bench.machine import machine_facts
from bench.report import Report

#: Timed steps of each loss on the tiny stand-in (seconds each, against a minute a step on the full one).
TINY_LOSS_STEPS = 4
REPORT = Report("bench_tune", "LoRA training throughput and the head-only loss", "make bench-tune", (9, 3.5))


def _batches(variant: str, batch: int, count: int) -> tuple[Any, Any, list[dict[str, Any]], ModelShape]:
    import torch
    from transformers import AutoTokenizer

    from deploy.standin import build_standin
    from guard_tune import load_policy, read_labelled
    from guard_tune._examples import Collator, build_example
    from guard_tune._train import TrainSettings, load_lora_model
    from guard_tune.examples import ACME, ACME_POLICY

    base = build_standin(variant)
    shape = ModelShape.from_config(json.loads((base / "config.json").read_text()))
    policy = load_policy(ACME_POLICY)
    rows = read_labelled(ACME / "data.jsonl", policy).rows
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    examples = [build_example(row, policy, tokenizer) for row in rows[: batch * count]]
    collate = Collator(tokenizer.pad_token_id)
    batches = [
        collate([{"input_ids": e.input_ids, "labels": e.labels} for e in examples[i * batch : (i + 1) * batch]])
        for i in range(count)
    ]
    model = load_lora_model(str(base), TrainSettings(seed=0))
    return torch, model, batches, shape


def _matmul_limit(dtype: Any, shapes: list[tuple[int, int, int]], window_s: float = 1.0) -> float:
    """GFLOP/s of torch.matmul in `dtype`: the best of three windows over `shapes` (as `measure_bf16_matmul`)."""
    import torch

    best = 0.0
    for m, k, n in shapes:
        a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
        torch.matmul(a, b)
        for _ in range(3):
            calls, began = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - began) < window_s or calls == 0:
                torch.matmul(a, b)
                calls += 1
            best = max(best, 2 * m * k * n * calls / elapsed / 1e9)
    return best


def _step_seconds(torch: Any, model: Any, batches: list[dict[str, Any]], loss_of: Any) -> list[float]:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    times = []
    for batch in batches:
        began = time.perf_counter()
        optimizer.zero_grad()
        loss_of(model, batch).backward()
        optimizer.step()
        times.append(time.perf_counter() - began)
    return times


def training_flops(shape: ModelShape, tokens: int, answer_tokens: int, naive: bool = False) -> int:
    """One LoRA training step's FLOPs: 4 x non-embedding parameters x tokens (forward 2, the activation-gradient
    backward 2), plus the (frozen) LM head at the answer positions, or at every position for the naive loss."""
    head_positions = tokens if naive else answer_tokens
    return 4 * shape.layers * shape.layer_weights * tokens + 4 * shape.hidden * shape.vocab * head_positions


def _losses_side_by_side(
    torch: Any, model: Any, batches: list[dict[str, Any]], head: list[float], shape: ModelShape, variant: str
) -> dict[str, Any]:
    """The naive loss's step time on the first batches `head` timed, and the FLOP ratio of the two steps: what
    skipping the head saves in matrix products on this model (a small hidden size over a large vocabulary: nearly
    all of them; 28 layers: little)."""
    from guard_tune._examples import naive_loss

    naive = _step_seconds(torch, model, batches, naive_loss)
    tokens = [int(b["attention_mask"].sum()) for b in batches]
    answers = [int((b["labels"][:, 1:] != -100).sum()) for b in batches]
    head_mean = sum(head[: len(naive)]) / len(naive)
    naive_mean = sum(naive) / len(naive)
    return {
        "model": f"stand-in {variant}",
        "steps_each": len(naive),
        "head_only_step_s": head_mean,
        "naive_step_s": naive_mean,
        "speedup": naive_mean / head_mean,
        "flop_ratio": sum(training_flops(shape, t, a, naive=True) for t, a in zip(tokens, answers, strict=True))
        / sum(training_flops(shape, t, a) for t, a in zip(tokens, answers, strict=True)),
    }


def _tiny_losses(batch: int, steps: int) -> dict[str, Any]:
    """Head-only against naive on the tiny stand-in (hidden 32), where the LM head is nearly all of a step."""
    from guard_tune._examples import answer_loss

    torch, model, batches, shape = _batches("tiny", batch, steps + 1)
    _step_seconds(torch, model, batches[:1], answer_loss)
    head = _step_seconds(torch, model, batches[1:], answer_loss)
    return _losses_side_by_side(torch, model, batches[1:], head, shape, "tiny")


def measure(variant: str, batch: int, steps: int, naive_steps: int) -> dict[str, Any]:
    from guard_tune._examples import answer_loss
    from guard_tune._train import training_dtype

    shapes = matmul_shapes(_shape_of(variant))
    limit = measure_bf16_matmul(shapes, kernels=["torch.matmul"])
    trained_dtype = training_dtype()
    own_limit = (
        limit["limit_gflop_per_s"] if str(trained_dtype) == "torch.bfloat16" else _matmul_limit(trained_dtype, shapes)
    )
    torch, model, batches, shape = _batches(variant, batch, steps + 1)
    warm, timed = batches[:1], batches[1:]
    _step_seconds(torch, model, warm, answer_loss)  # one-off costs: allocation, thread pools
    head = _step_seconds(torch, model, timed, answer_loss)
    losses = [_losses_side_by_side(torch, model, timed[:naive_steps], head, shape, variant)]
    if variant != "tiny":
        losses.append(_tiny_losses(batch, TINY_LOSS_STEPS))
    tokens = [int(b["attention_mask"].sum()) for b in timed]
    answer_tokens = [int((b["labels"][:, 1:] != -100).sum()) for b in timed]
    flops = sum(training_flops(shape, t, a) for t, a in zip(tokens, answer_tokens, strict=True))
    seconds = sum(head)
    achieved = flops / seconds / 1e9
    return {
        "benchmark": "bench-tune",
        "model": f"stand-in {variant} (Qwen3 {shape.layers} layers, hidden {shape.hidden}, random weights), "
        f"{str(trained_dtype).removeprefix('torch.')}, LoRA rank 16 on all seven projections",
        "trained_dtype": str(trained_dtype).removeprefix("torch."),
        "trained_dtype_limit_gflop_per_s": own_limit,
        "flop_model": "4 x non-embedding parameters x tokens + 4 x hidden x vocab x answer tokens (head-only)",
        "machine": machine_facts(),
        "cpu": platform.processor() or platform.machine(),
        "load_average": os.getloadavg(),
        "limit": limit,
        "training": {
            "batch": batch,
            "steps": len(head),
            "seconds": seconds,
            "examples_per_s": batch * len(head) / seconds,
            "tokens_per_s": sum(tokens) / seconds,
            "mean_prompt_tokens": sum(tokens) / (batch * len(head)),
            "achieved_gflop_per_s": achieved,
            "fraction_of_bf16_limit": achieved / limit["limit_gflop_per_s"],
            "fraction_of_trained_dtype_limit": achieved / own_limit,
        },
        "head_only_vs_naive": losses,
    }


def _shape_of(variant: str) -> ModelShape:
    from deploy.standin import VARIANTS

    return ModelShape.from_config(VARIANTS[variant])


def markdown(result: dict[str, Any]) -> str:
    t, losses = result["training"], result["head_only_vs_naive"]
    return "\n".join(
        [
            f"Model: {result['model']}. CPU: {result['cpu']}, load average {result['load_average'][0]:.1f} at the "
            f"end. FLOP model: {result['flop_model']}.",
            "",
            "| examples/s | tokens/s | achieved GFLOP/s | bf16 matmul limit | fraction | "
            f"{result['trained_dtype']} matmul limit | fraction |",
            "|---|---|---|---|---|---|---|",
            f"| {t['examples_per_s']:.2f} | {t['tokens_per_s']:.0f} | {t['achieved_gflop_per_s']:.1f} | "
            f"{result['limit']['limit_gflop_per_s']:.1f} | {t['fraction_of_bf16_limit']:.0%} | "
            f"{result['trained_dtype_limit_gflop_per_s']:.1f} | {t['fraction_of_trained_dtype_limit']:.0%} |",
            "",
            f"Batches of {t['batch']}, {t['steps']} timed steps, {t['mean_prompt_tokens']:.0f} tokens per example.",
            "",
            "The loss: step seconds (forward + backward + optimizer) on the same guard-length batches. The FLOP "
            "ratio is the naive step's matrix-product FLOPs over the head-only step's; the naive loss also takes a "
            "log-softmax of the whole vocabulary at every position, which the ratio leaves out.",
            "",
            "| model | head only where the loss needs it | naive (full-vocabulary logits at every position) | "
            "speed-up | FLOP ratio |",
            "|---|---|---|---|---|",
            *(
                f"| {h['model']} | {h['head_only_step_s']:.2f} | {h['naive_step_s']:.2f} | {h['speedup']:.1f}x | "
                f"{h['flop_ratio']:.1f}x |"
                for h in losses
            ),
        ]
    )


def write_report(result: dict[str, Any], out: Path) -> list[Path]:
    def draw(fig: Any) -> None:
        t, losses = result["training"], result["head_only_vs_naive"]
        left, right = fig.subplots(1, 2)
        left.bar(
            ["achieved", "bf16 limit", f"{result['trained_dtype']} limit"],
            [
                t["achieved_gflop_per_s"],
                result["limit"]["limit_gflop_per_s"],
                result["trained_dtype_limit_gflop_per_s"],
            ],
        )
        left.set_ylabel("GFLOP/s")
        left.set_title(f"LoRA training: {t['fraction_of_trained_dtype_limit']:.0%} of its dtype's limit")
        names = [h["model"].removeprefix("stand-in ") for h in losses]
        right.bar(names, [h["speedup"] for h in losses], color="tab:green", label="measured")
        right.scatter(names, [h["flop_ratio"] for h in losses], color="black", marker="_", s=400, label="FLOP ratio")
        right.set_yscale("log")
        right.set_ylim(bottom=1)  # 1x: no faster
        right.set_ylabel("naive step / head-only step")
        right.set_title("the head only where the loss needs it")
        right.legend()

    return REPORT.write(out, result, markdown(result), draw)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", default="full", choices=["tiny", "full"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4, help="timed training steps (one more warms up)")
    parser.add_argument("--naive-steps", type=int, default=2, help="steps timed with the naive loss")
    parser.add_argument("--out", type=Path, default=Path("bench/reports"))


def run(args: argparse.Namespace) -> int:
    result = measure(args.variant, args.batch, args.steps, min(args.naive_steps, args.steps))
    paths = write_report(result, args.out)
    print(paths[1].read_text())
    return 0
