"""The baseline a user writes first: `transformers` `generate`, one check at a time, as in the model card.

Runs in its own process (`python -m bench.baseline IN.json OUT.json`) so the benchmark can watch
its memory and it never shares a process with vLLM. Output length is forced to exactly the number
of tokens the real model writes (`min_new_tokens = max_new_tokens`), so a random-weight stand-in
costs what the real model would.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def run_baseline(model_path: str, checks: list[dict[str, Any]], warmup: int = 1) -> dict[str, Any]:
    """`checks`: [{"messages": [...], "output_tokens": N}, ...]; the first `warmup` are run untimed too."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    loading = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype="auto").to(device)  # type: ignore[arg-type]  # transformers types .to() for torch.nn only
    model.eval()
    load_s = time.perf_counter() - loading

    def one(check: dict[str, Any]) -> dict[str, Any]:
        # return_dict=True gives a BatchEncoding; transformers types it as any of its return shapes.
        inputs = tokenizer.apply_chat_template(
            check["messages"], add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(device)  # type: ignore[union-attr]
        started = time.perf_counter()
        with torch.inference_mode():
            output = model.generate(
                **inputs,
                max_new_tokens=check["output_tokens"],
                min_new_tokens=check["output_tokens"],
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        if device == "cuda":
            torch.cuda.synchronize()
        prompt_tokens = int(inputs["input_ids"].shape[-1])
        return {
            "latency_s": time.perf_counter() - started,
            "prompt_tokens": prompt_tokens,
            "output_tokens": int(output.shape[-1]) - prompt_tokens,
        }

    for check in checks[:warmup]:
        one(check)
    started = time.perf_counter()
    results = [one(check) for check in checks]
    return {
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "load_s": load_s,
        "wall_s": time.perf_counter() - started,
        "checks": results,
    }


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 2:
        print("usage: python -m bench.baseline IN.json OUT.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(args[0]).read_text())
    result = run_baseline(spec["model"], spec["checks"], spec.get("warmup", 1))
    Path(args[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
