"""How close a check rate is to the machine's limit: the FLOPs one check costs and the bf16 rate the
machine reaches on matrix products, measured in the same run as the benchmark.

Absolute checks/s move twofold between machines of the same kind; achieved FLOP/s as a fraction of the
machine's own measured bf16 matrix-product rate does not, and says how much room is left.

The FLOP model counts matrix products only (the projections, the MLP, the attention scores and their
weighted sum, the vocabulary projection); norms, rotary embeddings, softmax and sampling are left out.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ModelShape:
    """The shape facts of a decoder-only transformer that its FLOPs depend on."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ModelShape:
        """From a Hugging Face `config.json` mapping (Qwen3 key names)."""
        return cls(
            hidden=int(config["hidden_size"]),
            intermediate=int(config["intermediate_size"]),
            layers=int(config["num_hidden_layers"]),
            heads=int(config["num_attention_heads"]),
            kv_heads=int(config["num_key_value_heads"]),
            head_dim=int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]),
            vocab=int(config["vocab_size"]),
        )

    @property
    def layer_weights(self) -> int:
        """Multiply-accumulate weights one token passes through in one layer (q, k, v, o, gate, up, down)."""
        q_out = self.heads * self.head_dim
        kv_out = self.kv_heads * self.head_dim
        attention = self.hidden * q_out + 2 * self.hidden * kv_out + q_out * self.hidden
        return attention + 3 * self.hidden * self.intermediate


def guard_model_shape() -> ModelShape:
    """Qwen3Guard-Gen-0.6B's shape, read from the stand-in's configuration (the same architecture)."""
    from deploy.standin import VARIANTS

    return ModelShape.from_config(VARIANTS["full"])


def check_flops(shape: ModelShape, prompt_tokens: float, cached_tokens: float, output_tokens: float) -> float:
    """FLOPs (2 per multiply-accumulate) one check costs when `cached_tokens` of its `prompt_tokens` come
    from the prefix cache and it writes `output_tokens`.

    Every uncached prompt token and every output token passes through all layers' weights; each output
    token also through the vocabulary projection (a prefill computes logits for its last position only).
    Attention: the token at position i (1-based) scores against i keys and sums i values, 4 * heads *
    head_dim FLOPs per key and layer, for every position from the first uncached one to the last output.
    """
    if min(prompt_tokens, cached_tokens, output_tokens) < 0 or cached_tokens > prompt_tokens:
        raise ValueError(
            f"need 0 <= cached <= prompt and output >= 0, got prompt={prompt_tokens}, "
            f"cached={cached_tokens}, output={output_tokens}"
        )
    computed = prompt_tokens - cached_tokens + output_tokens
    linear = 2 * shape.layers * shape.layer_weights * computed
    logits = 2 * shape.hidden * shape.vocab * output_tokens
    end = prompt_tokens + output_tokens
    keys = (end * (end + 1) - cached_tokens * (cached_tokens + 1)) / 2  # sum of i over the computed positions
    attention = 4 * shape.layers * shape.heads * shape.head_dim * keys
    return float(linear + logits + attention)


#: The fields `run_flops` adds to a run.
FLOP_FIELDS = ("uncached_tokens_per_check", "gflop_per_check", "achieved_gflop_per_s", "fraction_of_limit")


def run_flops(shape: ModelShape, run: Mapping[str, Any], limit_flop_per_s: float | None) -> dict[str, Any]:
    """FLOP fields for one benchmark run: uncached tokens per check, FLOPs per check, achieved FLOP/s and
    its fraction of the measured limit. The cached share comes from the run's prefix-cache hit rate (hit
    tokens over queried prompt tokens, across the run); a run without one (no cache) computed every token."""
    prompt = float(run["mean_prompt_tokens"])
    output = float(run["mean_output_tokens"])
    cached = prompt * float(run.get("prefix_cache_hit_rate") or 0.0)
    flops = check_flops(shape, prompt, cached, output)
    achieved = flops * float(run["checks_per_s"])
    return {
        "uncached_tokens_per_check": round(prompt - cached + output, 1),
        "gflop_per_check": round(flops / 1e9, 3),
        "achieved_gflop_per_s": round(achieved / 1e9, 2),
        "fraction_of_limit": round(achieved / limit_flop_per_s, 4) if limit_flop_per_s else None,
    }


#: Rows of the layer-shaped products: a 512-token prefill batch.
PREFILL_TOKENS = 512
#: Side of the large square product.
SQUARE = 2048


def matmul_shapes(shape: ModelShape) -> list[tuple[int, int, int]]:
    """(rows, inner, columns) of the products timed for the limit: a prefill batch through the MLP's up
    and down projections and the attention's query projection, and a large square product."""
    tokens = PREFILL_TOKENS
    q_out = shape.heads * shape.head_dim
    return [
        (tokens, shape.hidden, shape.intermediate),
        (tokens, shape.intermediate, shape.hidden),
        (tokens, shape.hidden, q_out),
        (SQUARE, SQUARE, SQUARE),
    ]


def _kernels(device: str) -> dict[str, Callable[[Any, Any], Callable[[], Any]]]:
    """Ways to multiply bf16 matrices here, each as (a, b) -> a call computing a @ b: torch.matmul, and on
    the CPU also vLLM's oneDNN kernel (what the CPU server runs its linear layers with) where installed.
    On some CPUs (AMD with MKL) torch.matmul reaches well under half of what oneDNN does."""
    import torch

    kernels: dict[str, Callable[[Any, Any], Callable[[], Any]]] = {
        "torch.matmul": lambda a, b: lambda: torch.matmul(a, b)
    }
    if device == "cpu":
        with contextlib.suppress(Exception):  # no vLLM, or a build without the oneDNN ops
            from vllm import _custom_ops as ops

            def onednn(a: Any, b: Any) -> Callable[[], Any]:
                handle = ops.create_onednn_mm(b, 32)
                return lambda: ops.onednn_mm(handle, a, None)

            onednn(torch.ones(2, 2, dtype=torch.bfloat16), torch.ones(2, 2, dtype=torch.bfloat16))()
            kernels["vllm onednn_mm"] = onednn
    return kernels


def measure_bf16_matmul(
    shapes: Sequence[tuple[int, int, int]],
    window_s: float = 1.0,
    windows: int = 3,
    device: str | None = None,
    kernels: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The best sustained bf16 matrix-product rate of this machine: each product, with each kernel, repeated
    for `windows` windows of `window_s` seconds (after one untimed call); a window's rate is its FLOPs over
    its wall time, the limit is the best window over all shapes and kernels (all, or those named). On the
    CPU with torch's default thread count; on the GPU where there is one (`device` None), since that is where
    servers run."""
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    on_gpu = device.startswith("cuda")
    per_shape: list[dict[str, Any]] = []
    for kernel, make in _kernels(device).items():
        if kernels is not None and kernel not in kernels:
            continue
        for m, k, n in shapes:
            a = torch.randn(m, k, dtype=torch.bfloat16, device=device)
            b = torch.randn(k, n, dtype=torch.bfloat16, device=device)
            call = make(a, b)
            call()  # one-off costs: allocation, kernel choice, weight packing
            if on_gpu:
                torch.cuda.synchronize()
            rates = []
            for _ in range(windows):
                calls, started = 0, time.perf_counter()
                while True:
                    call()
                    calls += 1
                    if calls % 8 == 0 or not on_gpu:
                        if on_gpu:
                            torch.cuda.synchronize()
                        elapsed = time.perf_counter() - started
                        if elapsed >= window_s:
                            break
                rates.append(2 * m * k * n * calls / elapsed)
            per_shape.append({"kernel": kernel, "shape": [m, k, n], "best_gflop_per_s": round(max(rates) / 1e9, 2)})
    best = max(per_shape, key=lambda s: s["best_gflop_per_s"])
    return {
        "dtype": "bfloat16",
        "device": device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "window_s": window_s,
        "windows": windows,
        "shapes": per_shape,
        "limit_gflop_per_s": best["best_gflop_per_s"],
        "limit_shape": best["shape"],
        "limit_kernel": best["kernel"],
    }


def measure_machine_limit(shape: ModelShape) -> dict[str, Any]:
    """`measure_bf16_matmul` on `matmul_shapes(shape)` in a process of its own (vLLM's import and torch's
    threads stay out of the caller)."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.flops", json.dumps(asdict(shape))],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


if __name__ == "__main__":
    print(json.dumps(measure_bf16_matmul(matmul_shapes(ModelShape(**json.loads(sys.argv[1]))))))
