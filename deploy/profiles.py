"""Serving profiles: the vLLM flags for each way of running the guard, one YAML file each.

The YAML files in `deploy/profiles/` are the single source of truth for the server's flags:
the launcher, the container and the Helm chart all take their command line from
`ServingProfile.vllm_args()`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from guard_client import DEFAULT_MODEL

PROFILE_DIR = Path(__file__).parent / "profiles"
SCHEMA_VERSION = 1
#: The values vLLM 0.32 accepts for `--max-lora-rank` (`vllm.config.lora.MaxLoRARanks`).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


class LoraModule(NamedTuple):
    """One adapter as the server's flags need it: the served name, its directory, its rank."""

    name: str
    path: str
    rank: int


class ProfileError(ValueError):
    """A profile that does not exist or does not validate; the message names the field."""


class ServingProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str
    model: str = Field(min_length=1, description="HF id, local path, or 'standin:full' / 'standin:tiny'")
    #: The name clients ask for; the client library's default, so neither side spells it.
    served_model_name: str = Field(default=DEFAULT_MODEL, min_length=1)
    device: Literal["gpu", "cpu"]
    dtype: Literal["bfloat16", "float16", "float32", "auto"] = "bfloat16"
    host: str = "0.0.0.0"
    port: int = Field(default=8000, ge=1, le=65535)
    max_model_len: int = Field(ge=512, le=40960, description="the model's positions end at 40960")
    max_num_seqs: int = Field(ge=1, le=4096)
    max_num_batched_tokens: int = Field(ge=256)
    gpu_memory_utilization: float | None = Field(default=None, gt=0.0, le=1.0)
    enable_prefix_caching: bool = True
    block_size: int | None = Field(default=None, ge=1, le=256, description="KV cache block size; None keeps vLLM's")
    api_server_count: int = Field(default=1, ge=1, le=64)
    api_key_env: str = Field(default="VLLM_API_KEY", pattern=r"^[A-Z_][A-Z0-9_]*$")
    generation_config: Literal["vllm", "auto"] = "vllm"
    env: dict[str, str] = Field(default_factory=dict)
    #: The largest adapter rank this profile serves; vLLM sizes its LoRA buffers by `--max-lora-rank`.
    max_lora_rank: int = Field(default=64, description=f"one of vLLM's {VLLM_LORA_RANKS}")
    #: The most adapters that share one batch (`--max-loras`); fewer served adapters lower it.
    max_loras: int = Field(default=4, ge=1, le=64)

    @model_validator(mode="after")
    def _gpu_share_matches_device(self) -> ServingProfile:
        if self.device == "cpu" and self.gpu_memory_utilization is not None:
            raise ValueError("gpu_memory_utilization: only a gpu profile can set it")
        if self.device == "gpu" and self.gpu_memory_utilization is None:
            raise ValueError("gpu_memory_utilization: a gpu profile must set its share of the GPU")
        return self

    @model_validator(mode="after")
    def _lora_rank_is_vllms(self) -> ServingProfile:
        if self.max_lora_rank not in VLLM_LORA_RANKS:
            raise ValueError(f"max_lora_rank: must be one of vLLM's {', '.join(map(str, VLLM_LORA_RANKS))}")
        return self

    def lora_flags(self, adapters: Sequence[LoraModule]) -> list[str]:
        """vLLM's multi-LoRA flags for `adapters` (none: no flags, LoRA stays off).

        `--max-lora-rank` is the smallest value vLLM accepts that covers every adapter, and
        `--max-loras` the number of adapters up to the profile's cap: both size buffers the LoRA
        kernels walk on every step, so neither is larger than the adapters need.
        """
        if not adapters:
            return []
        rank = max(adapter.rank for adapter in adapters)
        if rank > self.max_lora_rank:
            raise ProfileError(f"an adapter of rank {rank} exceeds this profile's max_lora_rank {self.max_lora_rank}")
        return [
            "--enable-lora",
            "--lora-modules",
            *(f"{adapter.name}={adapter.path}" for adapter in adapters),
            "--max-lora-rank",
            str(min(r for r in VLLM_LORA_RANKS if r >= rank)),
            "--max-loras",
            str(min(len(adapters), self.max_loras)),
        ]

    def vllm_args(self, *, model: str | None = None, port: int | None = None, host: str | None = None) -> list[str]:
        """`vllm serve`'s arguments: the model first (it is positional there), then `server_flags()`."""
        return [model or self.model, *self.server_flags(port=port, host=host)]

    def server_flags(
        self, *, port: int | None = None, host: str | None = None, adapters: Sequence[LoraModule] = ()
    ) -> list[str]:
        """Every server flag but the model, in a fixed order.

        The model travels apart because each command places it differently: positional after
        `vllm serve` (container, chart), the value of `--model` for the module entry point
        (launcher), and a values override in the chart may replace it.
        """
        args = [
            "--served-model-name",
            self.served_model_name,
            "--host",
            host or self.host,
            "--port",
            str(port or self.port),
            "--dtype",
            self.dtype,
            "--max-model-len",
            str(self.max_model_len),
            "--max-num-seqs",
            str(self.max_num_seqs),
            "--max-num-batched-tokens",
            str(self.max_num_batched_tokens),
            "--enable-prefix-caching" if self.enable_prefix_caching else "--no-enable-prefix-caching",
            "--generation-config",
            self.generation_config,
        ]
        if self.block_size is not None:
            args += ["--block-size", str(self.block_size)]
        if self.gpu_memory_utilization is not None:
            args += ["--gpu-memory-utilization", f"{self.gpu_memory_utilization:g}"]
        if self.api_server_count > 1:
            args += ["--api-server-count", str(self.api_server_count)]
        return args + self.lora_flags(adapters)

    def container_command(self) -> list[str]:
        """The full command of the official vLLM image (GPU profiles): what the Helm chart runs."""
        return ["vllm", "serve", *self.vllm_args()]


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load_profile(name_or_path: str | Path) -> ServingProfile:
    """Load and validate a profile by name (`gpu`, `gpu-sidecar`, `cpu`) or by YAML path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = PROFILE_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ProfileError(
                f"unknown serving profile {str(name_or_path)!r}; choose one of: {', '.join(available_profiles())}"
            )
    elif not path.is_file():
        raise ProfileError(f"profile file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ProfileError(f"profile {path.name}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ProfileError(f"profile {path.name}: expected a mapping of fields at the top level")
    try:
        return ServingProfile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(profile)'}: {err['msg']}" for err in exc.errors()
        )
        raise ProfileError(f"profile {path.name}: {problems}") from exc
