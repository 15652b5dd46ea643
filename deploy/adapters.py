"""Fine-tuned guard adapters: check a PEFT LoRA directory against the base model it will be served on,
and fold one into the base weights (a merged model directory).

An adapter directory is what PEFT's `save_pretrained` writes (`adapter_config.json`,
`adapter_model.safetensors`) plus the policy it was trained for (`guard_policy.yaml`). The launcher
reads each one here before vLLM starts, so a wrong directory stops the start with one line instead of
a stack trace from inside the engine.

"For this base model" is decided by shapes, not by name: every LoRA matrix must fit the module it
adapts in the served model's `config.json`. The name PEFT records (`base_model_name_or_path`) is the
path of whatever model the adapter was trained on: for the stand-in a local directory, for the real
guard `Qwen/Qwen3Guard-Gen-0.6B`. The full stand-in has the real model's exact shapes, so an adapter
trained on it loads on the real model, and one trained on the tiny stand-in loads on no other.

No torch, peft or web stack at import time: the launcher, the chart renderer and `guard tune --merge`
(part 2) import this module; only `merge_adapter` loads the training stack, when it is called.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guard_client import POLICY_FILE, STANDIN_MARKER, GuardPolicy, GuardPolicyError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
#: A served name: what a request's `model` field carries, and a Kubernetes-friendly volume sub-path.
ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
#: `...layers.<i>.<block>.<module>.lora_A.weight` in PEFT's saved state dict.
_LORA_KEY = re.compile(r"\.layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_([AB])\.weight$")


class AdapterError(ValueError):
    """An adapter directory that cannot be served on this base model; the message is one line."""


@dataclass(frozen=True)
class Adapter:
    """One checked adapter: what the server's LoRA flags and the gateway's `models:` need."""

    name: str
    path: Path
    rank: int
    target_modules: tuple[str, ...]
    base_model: str
    policy_file: Path


def parse_adapter_spec(spec: str) -> tuple[str, Path]:
    """`NAME=DIR` (the `--adapter` flag, `make serve ADAPTERS=...`) as a name and a directory."""
    name, sep, directory = spec.partition("=")
    if not sep or not directory:
        raise AdapterError(f"--adapter {spec!r}: expected NAME=DIR, e.g. acme=./adapters/acme")
    if not ADAPTER_NAME.match(name):
        raise AdapterError(
            f"--adapter {spec!r}: the name must be letters, digits, '.', '_' or '-' (at most 63), starting with a "
            "letter or digit"
        )
    return name, Path(directory).expanduser()


def module_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """(in, out) features of each linear module a LoRA can adapt, for a Qwen3 `config.json`."""
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    head_dim = int(config.get("head_dim") or hidden // heads)
    kv = int(config.get("num_key_value_heads") or heads) * head_dim
    inner = int(config["intermediate_size"])
    return {
        "q_proj": (hidden, heads * head_dim),
        "k_proj": (hidden, kv),
        "v_proj": (hidden, kv),
        "o_proj": (heads * head_dim, hidden),
        "gate_proj": (hidden, inner),
        "up_proj": (hidden, inner),
        "down_proj": (inner, hidden),
    }


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise AdapterError(f"{what}: cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise AdapterError(f"{what}: {path} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise AdapterError(f"{what}: {path} must hold a JSON object")
    return data


def base_model_config(model: str) -> dict[str, Any] | None:
    """The served model's `config.json`: from its directory, or Hugging Face's local cache for an id;
    None when neither has it (the server downloads it; shapes are then checked by vLLM itself)."""
    directory = Path(model).expanduser()
    if directory.is_dir():
        return _read_json(directory / "config.json", f"model {model}")
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - installed with vllm and transformers
        return None
    cached = try_to_load_from_cache(model, "config.json")
    return _read_json(Path(cached), f"model {model}") if isinstance(cached, str) else None


def _weight_shapes(path: Path, what: str) -> dict[str, tuple[int, ...]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as weights:
            return {key: tuple(weights.get_slice(key).get_shape()) for key in weights.keys()}  # noqa: SIM118
    except (OSError, SafetensorError) as exc:
        raise AdapterError(f"{what}: {path} is not a readable safetensors file ({exc})") from None


def read_adapter(name: str, directory: Path, base_model: str, max_rank: int) -> Adapter:
    """Check that `directory` is a PEFT LoRA adapter for `base_model` (a directory or id) with a rank of
    at most `max_rank` and a valid `guard_policy.yaml`; every failure is one `AdapterError` line."""
    what = f"adapter {name!r} ({directory})"
    if not directory.is_dir():
        raise AdapterError(f"{what}: no such directory")
    config_path = directory / ADAPTER_CONFIG
    if not config_path.is_file():
        raise AdapterError(f"{what}: not a PEFT adapter (no {ADAPTER_CONFIG}; save one with peft's save_pretrained)")
    config = _read_json(config_path, what)
    if config.get("peft_type") != "LORA":
        raise AdapterError(f"{what}: peft_type is {config.get('peft_type')!r}; vLLM serves only LORA adapters")
    if config.get("modules_to_save"):
        raise AdapterError(
            f"{what}: modules_to_save {config['modules_to_save']} (fully trained layers) cannot be served by vLLM's "
            "multi-LoRA; merge the adapter instead (deploy.adapters.merge_adapter) and serve it with --model"
        )
    ranks = [int(config.get("r") or 0), *(int(r) for r in (config.get("rank_pattern") or {}).values())]
    rank = max(ranks)
    if rank < 1:
        raise AdapterError(f"{what}: {ADAPTER_CONFIG} has no LoRA rank 'r'")
    if rank > max_rank:
        raise AdapterError(
            f"{what}: rank {rank} exceeds the {max_rank} this profile allows (max_lora_rank); "
            "train a smaller rank or use a profile that allows it"
        )
    weights_path = directory / ADAPTER_WEIGHTS
    if not weights_path.is_file():
        raise AdapterError(f"{what}: no {ADAPTER_WEIGHTS} (save with peft's save_pretrained, safetensors on)")
    recorded_base = str(config.get("base_model_name_or_path") or "unknown")
    modules = _check_shapes(what, _weight_shapes(weights_path, what), base_model, recorded_base)
    policy_file = directory / POLICY_FILE
    if not policy_file.is_file():
        raise AdapterError(f"{what}: no {POLICY_FILE}; an adapter carries the policy it was trained for")
    try:
        GuardPolicy.load(policy_file)
    except GuardPolicyError as exc:
        raise AdapterError(f"{what}: {exc}") from None
    # Absolute: vLLM and the gateway read these from processes of their own.
    return Adapter(name, directory.resolve(), rank, modules, recorded_base, policy_file.resolve())


def _check_shapes(
    what: str, shapes: Mapping[str, tuple[int, ...]], base_model: str, recorded_base: str
) -> tuple[str, ...]:
    """Every LoRA matrix against the module it adapts; returns the adapted module names."""
    lora = {key: match for key in shapes if (match := _LORA_KEY.search(key))}
    if not lora:
        raise AdapterError(f"{what}: {ADAPTER_WEIGHTS} holds no LoRA weights of attention or MLP layers")
    base_config = base_model_config(base_model)
    if base_config is None:
        return tuple(sorted({match.group(2) for match in lora.values()}))
    if "Qwen3ForCausalLM" not in (base_config.get("architectures") or []):
        raise AdapterError(f"model {base_model}: not a Qwen3ForCausalLM; adapters are checked against Qwen3Guard-Gen")
    expected = module_shapes(base_config)
    layers = int(base_config["num_hidden_layers"])
    for key, match in lora.items():
        layer, module, side = int(match.group(1)), match.group(2), match.group(3)
        if module not in expected or layer >= layers:
            raise AdapterError(
                f"{what}: adapts {module} of layer {layer}, which {base_model} does not have "
                f"(trained on {recorded_base}, not on this base model)"
            )
        in_features, out_features = expected[module]
        shape = shapes[key]
        fits = len(shape) == 2 and (shape[1] == in_features if side == "A" else shape[0] == out_features)
        if not fits:
            raise AdapterError(
                f"{what}: {module}.lora_{side} has shape {list(shape)}, which does not fit {base_model} "
                f"({in_features} in, {out_features} out): trained on {recorded_base}, not on this base model"
            )
    return tuple(sorted({match.group(2) for match in lora.values()}))


def read_adapters(specs: Sequence[str], base_model: str, max_rank: int) -> list[Adapter]:
    """Every `NAME=DIR` checked; a repeated name is an error too."""
    adapters: list[Adapter] = []
    for spec in specs:
        name, directory = parse_adapter_spec(spec)
        if any(adapter.name == name for adapter in adapters):
            raise AdapterError(f"--adapter {name!r} is given twice; each adapter needs its own name")
        adapters.append(read_adapter(name, directory, base_model, max_rank))
    return adapters


def model_policy(model_dir: str) -> Path | None:
    """The `guard_policy.yaml` a model directory (a merged adapter) carries, validated; None without one."""
    path = Path(model_dir).expanduser() / POLICY_FILE
    if not path.is_file():
        return None
    try:
        GuardPolicy.load(path)
    except GuardPolicyError as exc:
        raise AdapterError(f"model {model_dir}: {exc}") from None
    return path


#: Every linear projection of a Qwen3 layer: what `guard tune` adapts, and the random adapter too.
ALL_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def build_random_adapter(
    base_model: Path | str,
    out_dir: Path | str,
    policy_file: Path | str,
    *,
    rank: int = 8,
    target_modules: Sequence[str] = ALL_PROJECTIONS,
    seed: int = 0,
) -> Path:
    """A LoRA adapter with random weights (B too, so it changes the base model's answers) for `base_model`,
    saved by PEFT beside a copy of `policy_file`: what the tests and the docs serve on the stand-in before
    `guard tune` trains a real one. Its verdicts are as random as the stand-in's."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = Path(out_dir)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base_model), dtype=torch.bfloat16)
    config = LoraConfig(
        r=rank, lora_alpha=2 * rank, target_modules=list(target_modules), init_lora_weights=False, task_type="CAUSAL_LM"
    )
    get_peft_model(model, config).save_pretrained(str(out), safe_serialization=True)
    shutil.copyfile(policy_file, out / POLICY_FILE)
    return out


def merge_adapter(adapter_dir: Path | str, out_dir: Path | str, base_model: str | None = None) -> Path:
    """Fold a LoRA adapter into its base weights (PEFT's `merge_and_unload`) and write an ordinary model
    directory: weights, tokenizer with the chat template, and the adapter's `guard_policy.yaml`.

    `base_model` defaults to the adapter's `base_model_name_or_path`. A merged stand-in keeps the
    stand-in's model card, and so its marker: its verdicts are random too. `guard tune --merge` calls this.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter, out = Path(adapter_dir), Path(out_dir)
    config = _read_json(adapter / ADAPTER_CONFIG, f"adapter {adapter}")
    base = base_model or str(config.get("base_model_name_or_path") or "")
    if not base:
        raise AdapterError(f"adapter {adapter}: {ADAPTER_CONFIG} names no base model; pass base_model")
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(out), safe_serialization=True)
    AutoTokenizer.from_pretrained(base).save_pretrained(str(out))
    for name in ("generation_config.json", "chat_template.jinja", "README.md"):
        source = Path(base) / name
        if source.is_file() and (name != "README.md" or STANDIN_MARKER in source.read_text()):
            shutil.copyfile(source, out / name)
    if (adapter / POLICY_FILE).is_file():
        shutil.copyfile(adapter / POLICY_FILE, out / POLICY_FILE)
    return out
