"""Transformers-side measurement of where a guard check's time goes, for a GPU machine without vLLM.

The Qwen3Guard-Gen-0.6B architecture (random weights: throughput is real, verdicts are not) checks
real guard prompts three ways: one at a time writing the 9-token answer (the model card's way, the
baseline of `make bench`), in batches writing the full 9-token answer, and in batches writing only
the verdict token (what the client's verdict-first path asks of the server). The ratio of the last
two is the most verdict-first can save on that accelerator.

    python -m bench decode-share --model-dir DIR --prompts FILE.jsonl --out DIR

DIR holds a stand-in's config.json and tokenizer files (`python -m deploy standin --variant full`);
the weights are drawn at random here, so the directory can travel without them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bench.report import Report

REPORT = Report(
    "gpu_decode_share", "Where a guard check's time goes (transformers)", "python -m bench decode-share", (6, 3.5)
)
ANSWER_TOKENS = 9  # what the real model writes in prompt mode, then <|im_end|>


def _timed(fn: Any, repeats: int, sync: Any) -> float:
    best = float("inf")
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--prompts", type=Path, required=True, help="JSONL with a 'prompt' field per line")
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda")


def run(args: argparse.Namespace) -> int:

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    texts = [json.loads(line)["prompt"] for line in args.prompts.read_text().splitlines() if line.strip()]
    texts = texts[: args.count]
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    tokenizer.padding_side = "left"
    # tokenize=False returns the rendered text; transformers types it as any of its return shapes.
    prompts = [str(tokenizer.apply_chat_template([{"role": "user", "content": t}], tokenize=False)) for t in texts]
    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(args.model_dir)
    model = AutoModelForCausalLM.from_config(config).to(device=args.device, dtype=torch.bfloat16).eval()
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)

    def generate(batch: list[str], tokens: int) -> None:
        encoded = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(args.device)
        with torch.inference_mode():
            model.generate(
                **encoded,
                max_new_tokens=tokens,
                min_new_tokens=tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )

    def one_at_a_time() -> None:
        for prompt in prompts[:16]:
            generate([prompt], ANSWER_TOKENS)

    def batched(tokens: int) -> None:
        for i in range(0, len(prompts), args.batch):
            generate(prompts[i : i + args.batch], tokens)

    batched(1)  # warm-up: kernels, allocator
    baseline_s = _timed(one_at_a_time, args.repeats, sync)
    full_s = _timed(lambda: batched(ANSWER_TOKENS), args.repeats, sync)
    verdict_s = _timed(lambda: batched(1), args.repeats, sync)
    mean_tokens = sum(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts) / len(prompts)
    result = {
        "device": torch.cuda.get_device_name() if args.device == "cuda" else args.device,
        "torch": torch.__version__,
        "prompts": len(prompts),
        "mean_prompt_tokens": round(mean_tokens, 1),
        "batch": args.batch,
        "baseline_one_at_a_time_checks_per_s": 16 / baseline_s,
        "batched_full_answer_checks_per_s": len(prompts) / full_s,
        "batched_verdict_token_checks_per_s": len(prompts) / verdict_s,
    }
    result["verdict_first_vs_full"] = (
        result["batched_verdict_token_checks_per_s"] / result["batched_full_answer_checks_per_s"]
    )
    result["batched_full_vs_baseline"] = (
        result["batched_full_answer_checks_per_s"] / result["baseline_one_at_a_time_checks_per_s"]
    )
    paths = REPORT.write(args.out, result, _markdown(result), lambda fig: _draw(result, fig))
    print(paths[1].read_text())
    return 0


_RATES = (
    ("baseline_one_at_a_time_checks_per_s", "one at a time, 9 tokens"),
    ("batched_full_answer_checks_per_s", "batched, 9 tokens"),
    ("batched_verdict_token_checks_per_s", "batched, verdict token"),
)


def _markdown(result: dict[str, Any]) -> str:
    rows = "".join(f"| {label} | {result[key]:.1f} |\n" for key, label in _RATES if key in result)
    return (
        "| way | checks/s |\n|---|--:|\n"
        + rows
        + f"\nVerdict-first against the full answer: {result['verdict_first_vs_full']:.2f}x; batched against one "
        f"at a time: {result['batched_full_vs_baseline']:.2f}x. Random weights: throughput is real, verdicts are not."
    )


def _draw(result: dict[str, Any], fig: Any) -> None:
    axis = fig.subplots()
    shown = [(label, result[key]) for key, label in _RATES if key in result]
    axis.barh([label for label, _ in shown], [value for _, value in shown])
    axis.set_xlabel("checks/s")
