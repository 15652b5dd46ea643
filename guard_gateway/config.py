"""The gateway's configuration: one YAML file validated by pydantic, every field overridable.

Precedence, lowest first: the model's defaults, the YAML file, environment variables
`GUARD_GATEWAY_<SECTION>__<FIELD>` (e.g. `GUARD_GATEWAY_GUARD__URL`), then command-line flags
(`--set guard.url=...` or the named shortcuts of `python -m guard_gateway serve`). An unknown field
or a bad value, from any of them, is a `ConfigError` naming the field.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from guard_client import GuardPolicy, GuardPolicyError
from guard_gateway.chat.settings import ChatSettings
from guard_gateway.policy import PolicySettings

ENV_PREFIX = "GUARD_GATEWAY_"
ENV_NESTING = "__"
DEFAULT_PORT = 8080
#: OpenAI's moderation model names: clients such as LiteLLM send only these.
OPENAI_MODERATION_MODELS = (
    "omni-moderation-latest",
    "omni-moderation-2024-09-26",
    "text-moderation-latest",
    "text-moderation-stable",
)


#: An http(s) URL with a host: a bad one stops the start naming the field, not every request later.
HTTP_URL = r"^https?://[^\s/?#]+(/\S*)?$"


class ConfigError(ValueError):
    """The configuration does not validate; the message names the field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GuardSettings(_Section):
    url: str = Field(
        default="http://localhost:8000", pattern=HTTP_URL, description="the vLLM server serving Qwen3Guard-Gen"
    )
    model: str = Field(default="qwen3guard", min_length=1, description="the guard's served model name")
    api_key: SecretStr | None = Field(default=None, description="bearer key for the guard (default $GUARD_API_KEY)")
    timeout: float = Field(default=30.0, gt=0, description="seconds per guard HTTP request")
    max_retries: int = Field(default=1, ge=0, le=10, description="retries of a failed guard request")
    concurrency: int = Field(default=16, ge=1, le=1024, description="guard checks in flight per gateway request")
    scores: bool = Field(default=False, description="ask for the verdict token's probabilities (category_scores)")
    chunk: bool = Field(default=True, description="check inputs longer than the guard accepts in windows")
    constrain: bool = Field(
        default=False, description="grammar-constrained answers: always a verdict (needed by the random stand-in)"
    )
    ready_ttl_seconds: float = Field(default=2.0, ge=0, description="how long a /ready answer is reused")
    policy: Path | None = Field(
        default=None, description="the guard's guard_policy.yaml (a merged model's); none: the model's own policy"
    )

    @field_validator("policy")
    @classmethod
    def _policy_validates(cls, value: Path | None) -> Path | None:
        return None if value is None else _checked_policy(value)


class ModelSettings(_Section):
    """One more guard model the gateway answers for: an adapter served beside the base guard by vLLM's
    multi-LoRA, or another vLLM server's merged model."""

    policy: Path = Field(description="its guard_policy.yaml (the categories it was trained for)")
    url: str | None = Field(default=None, pattern=HTTP_URL, description="its vLLM server (default: guard.url)")

    @field_validator("policy")
    @classmethod
    def _policy_validates(cls, value: Path) -> Path:
        return _checked_policy(value)


def _checked_policy(path: Path) -> Path:
    """A policy file that does not load stops the start, the error naming the file and the field."""
    try:
        GuardPolicy.load(path)
    except GuardPolicyError as exc:
        raise ValueError(str(exc)) from None
    return path


class ModerationSettings(_Section):
    model_aliases: tuple[str, ...] = Field(
        default=OPENAI_MODERATION_MODELS, description="model names answered as the guard besides its served name"
    )
    max_inputs: int = Field(default=64, ge=1, description="most inputs in one request")


class CacheSettings(_Section):
    enabled: bool = Field(default=True, description="greedy decoding makes a verdict a function of its prompt")
    max_entries: int = Field(default=10_000, ge=1, description="verdicts kept; the least recently used go first")
    ttl_seconds: float = Field(default=3600.0, gt=0, description="seconds a verdict is kept")


class AuthSettings(_Section):
    api_keys: tuple[SecretStr, ...] = Field(
        default=(), description="client bearer keys (env: comma-separated); none and no file: no auth"
    )
    api_keys_file: Path | None = Field(default=None, description="a file of keys, one a line (a mounted Secret)")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return [key.strip() for key in value.split(",") if key.strip()] if isinstance(value, str) else value

    def keys(self) -> frozenset[str]:
        keys = {key.get_secret_value() for key in self.api_keys}
        if self.api_keys_file is not None:
            keys |= {line.strip() for line in self.api_keys_file.read_text().splitlines() if line.strip()}
        return frozenset(keys)


class LimitSettings(_Section):
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="larger request bodies get 413")
    max_in_flight: int = Field(
        default=256, ge=1, description="requests in flight on the key-protected routes; past it 429 with Retry-After"
    )
    retry_after_seconds: int = Field(default=1, ge=1, le=3600, description="the Retry-After of that 429")


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="log level")
    access_log: bool = Field(default=True, description="one line per request: method, path, status, time")
    log_checked_text: bool = Field(default=False, description="include checked text in the log (never by default)")


class UpstreamSettings(_Section):
    """The LLM behind the guarded chat proxy (issue #12)."""

    url: str | None = Field(
        default=None, pattern=HTTP_URL, description="OpenAI-compatible base URL of the main LLM (http or https)"
    )
    api_key: SecretStr | None = Field(default=None, description="key sent upstream when the client's is not")
    pass_client_key: bool = Field(default=True, description="forward the client's bearer key upstream")


class GatewayConfig(_Section):
    """Every setting of the gateway; `deploy/gateway.example.yaml` shows them with their defaults."""

    host: str = Field(default="0.0.0.0", description="address to listen on")
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535, description="port to listen on")
    guard: GuardSettings = Field(default=GuardSettings(), description="the guard server and how to call it")
    policy: PolicySettings = Field(default=PolicySettings(), description="verdict -> allow, annotate or block")
    moderations: ModerationSettings = Field(default=ModerationSettings(), description="/v1/moderations")
    cache: CacheSettings = Field(default=CacheSettings(), description="the verdict cache (LRU, bounded in age)")
    auth: AuthSettings = Field(default=AuthSettings(), description="client bearer keys")
    limits: LimitSettings = Field(default=LimitSettings(), description="request limits")
    logging: LoggingSettings = Field(default=LoggingSettings(), description="logs")
    upstream: UpstreamSettings = Field(default=UpstreamSettings(), description="the main LLM (chat proxy)")
    chat: ChatSettings = Field(default=ChatSettings(), description="the guarded /v1/chat/completions proxy")
    models: dict[str, ModelSettings] = Field(
        default_factory=dict,
        description="more guard models by served name (adapters, merged models); a request's model picks one",
    )

    @model_validator(mode="after")
    def _model_names_are_distinct(self) -> GatewayConfig:
        taken = {self.guard.model, *self.moderations.model_aliases} & set(self.models)
        if taken:
            raise ValueError(f"models: {', '.join(sorted(taken))} is already the base guard's name or an alias")
        return self


def _field_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Every leaf field's dotted path and annotation."""
    paths: dict[tuple[str, ...], Any] = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths |= _field_paths(annotation, (*prefix, name))
        else:
            paths[(*prefix, name)] = annotation
    return paths


FIELD_PATHS = _field_paths(GatewayConfig)


def _parse_scalar(path: tuple[str, ...], text: str) -> Any:
    """A flag's or variable's text as YAML would read it; a list field also takes `a,b,c`."""
    annotation = FIELD_PATHS[path]
    if get_origin(annotation) in (list, tuple) and not text.lstrip().startswith("["):
        return [part.strip() for part in text.split(",") if part.strip()]
    if {str, SecretStr} & {annotation, *get_args(annotation)}:
        return text  # a key or URL stays text even when it looks like a number or `null`
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        node = tree.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{'.'.join(path)}: {key} is not a section")
        tree = node
    tree[path[-1]] = value


def _path(dotted: str, source: str) -> tuple[str, ...]:
    path = tuple(dotted.split("."))
    if path not in FIELD_PATHS:
        raise ConfigError(f"{source}: unknown configuration field {dotted!r}")
    return path


def env_overrides(environ: Mapping[str, str]) -> dict[str, str]:
    """`GUARD_GATEWAY_*` variables as dotted paths; an unknown one is an error (a typo must not pass)."""
    found = {}
    for name, value in environ.items():
        if name.startswith(ENV_PREFIX):
            dotted = name[len(ENV_PREFIX) :].lower().replace(ENV_NESTING, ".")
            _path(dotted, f"environment variable {name}")
            found[dotted] = value
    return found


def env_name(dotted: str) -> str:
    return ENV_PREFIX + dotted.upper().replace(".", ENV_NESTING)


def load_config(
    path: Path | str | None = None,
    overrides: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> GatewayConfig:
    """The configuration from a YAML file (optional), `GUARD_GATEWAY_*` variables and overrides.

    `overrides` maps dotted field paths (`guard.url`) to their text, as given on the command line.
    """
    tree: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read the configuration file {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        tree = loaded or {}
    layers = [
        (env_overrides(os.environ if environ is None else environ), "environment"),
        (dict(overrides or {}), "command line"),
    ]
    for layer, source in layers:
        for dotted, text in layer.items():
            field_path = _path(dotted, source)
            _set(tree, field_path, _parse_scalar(field_path, text))
    try:
        return GatewayConfig.model_validate(tree)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(top level)'}: {error['msg']}" for error in exc.errors()
        )
        where = f" in {path}" if path is not None else ""
        raise ConfigError(f"invalid gateway configuration{where}: {problems}") from None


def _yaml_value(value: Any) -> str:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, dict):
        value = {str(k): str(v) for k, v in value.items()}
    if isinstance(value, str) and type(value) is not str:  # StrEnum
        value = str(value)
    return yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("\n...").strip()


def example_yaml() -> str:
    """The defaults as a commented YAML file (`deploy/gateway.example.yaml`, pinned by a test)."""
    lines = [
        "# guard_gateway configuration: every field with its default (generated: python -m guard_gateway config).",
        f"# Each field can also be set by {ENV_PREFIX}<SECTION>__<FIELD> or --set section.field=value.",
    ]

    def walk(model: BaseModel, indent: str) -> None:
        for name, info in type(model).model_fields.items():
            value = getattr(model, name)
            if info.description:
                lines.append(f"{indent}# {info.description}")
            if isinstance(value, BaseModel):
                lines.append(f"{indent}{name}:")
                walk(value, indent + "  ")
            else:
                lines.append(f"{indent}{name}: {_yaml_value(value)}")

    walk(GatewayConfig(), "")
    return "\n".join(lines) + "\n"
