"""`guard tune`: data and policy in, an adapter directory out (adapter, policy, card, evaluation).

The output directory belongs to one run, named by `run.json` (base, data, policy and hyperparameters):
the same command resumes it from its last checkpoint, a different run there is refused, nothing is
overwritten.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guard_client.cli import config_from
from guard_tune._data import LabelledData, LabelledRow, TuneDataError, read_labelled, split
from guard_tune._policy import POLICY_FILE, PolicyFileError, TunePolicy, load_policy
from guard_tune._report import CARD_JSON, write_card, write_eval

if TYPE_CHECKING:
    from transformers import TrainerCallback

RUN_FILE = "run.json"
ADAPTER_FILE = "adapter_model.safetensors"
MERGED_DIR = "merged"
DEFAULT_BASE = "standin:tiny"
DEFAULT_EPOCHS = 3.0
MAX_LISTED_PROBLEMS = 10


class TuneError(RuntimeError):
    """`guard tune` cannot go on; the message is one line and nothing was overwritten."""


@dataclass
class TuneConfig:
    data: Path
    out: Path
    policy: Path | None = None
    base: str = DEFAULT_BASE
    eval_split: float = 0.2
    epochs: float | None = None
    steps: int | None = None
    rank: int = 16
    lr: float = 2e-3
    batch: int = 8
    seed: int = 0
    save_every: int = 25
    merge: bool = False
    eval_only: bool = False
    evaluate: bool = True
    name: str | None = None
    callbacks: Sequence[TrainerCallback] = field(default_factory=tuple)

    @property
    def adapter_name(self) -> str:
        return self.name or self.out.resolve().name


def fingerprint(model_dir: Path) -> str:
    """sha256 of the weights and config (the identity the adapter was trained on), first 16 hex digits."""
    digest = hashlib.sha256()
    for path in sorted([*model_dir.glob("*.safetensors"), model_dir / "config.json"]):
        if path.is_file():
            digest.update(path.name.encode())
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 24):
                    digest.update(chunk)
    return digest.hexdigest()[:16]


def _resolve_base(base: str) -> Path:
    from deploy.standin import resolve_model

    try:
        resolved = Path(resolve_model(base)).expanduser()
    except ValueError as exc:
        raise TuneError(str(exc)) from None
    if not (resolved / "config.json").is_file():
        raise TuneError(
            f"--base {base}: no model directory at {resolved} (a directory with config.json, or standin:tiny|full)"
        )
    return resolved


def _manifest(config: TuneConfig, data: LabelledData, policy: TunePolicy, base_print: str) -> dict[str, Any]:
    return {
        "base": config.base,
        "base_fingerprint": base_print,
        "data_sha256": data.sha256,
        "policy_sha256": policy.sha256,
        "eval_split": config.eval_split,
        "epochs": config.epochs,
        "steps": config.steps,
        "rank": config.rank,
        "lr": config.lr,
        "batch": config.batch,
        "seed": config.seed,
    }


def _claim_out_dir(out: Path, manifest: dict[str, Any]) -> bool:
    """Make `out` this run's; True when it already holds this run (resume or done)."""
    run_file = out / RUN_FILE
    if run_file.is_file():
        try:
            held = json.loads(run_file.read_text())
        except (OSError, json.JSONDecodeError):
            raise TuneError(f"{out} holds an unreadable {RUN_FILE}: choose another --out") from None
        if held != manifest:
            differs = sorted(k for k in manifest.keys() | held.keys() if manifest.get(k) != held.get(k))
            raise TuneError(
                f"{out} holds another run (its {', '.join(differs)} differ): choose another --out; nothing was changed"
            )
        return True
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TuneError(f"{out} exists and is not a guard tune run: choose a new or empty --out; nothing was changed")
    out.mkdir(parents=True, exist_ok=True)
    run_file.write_text(json.dumps(manifest, indent=2) + "\n")
    return False


def _load(config: TuneConfig, policy_path: Path) -> tuple[TunePolicy, LabelledData]:
    try:
        policy = load_policy(policy_path)
    except PolicyFileError as exc:
        raise TuneError(str(exc)) from None
    try:
        data = read_labelled(config.data, policy)
    except TuneDataError as exc:
        raise TuneError(str(exc)) from None
    for problem in data.problems[:MAX_LISTED_PROBLEMS]:
        print(f"skipped line {problem.row}: {problem.message}", file=sys.stderr)
    if len(data.problems) > MAX_LISTED_PROBLEMS:
        print(f"... and {len(data.problems) - MAX_LISTED_PROBLEMS} more bad rows skipped", file=sys.stderr)
    return policy, data


def serve_hint(config: TuneConfig, merged: bool) -> list[str]:
    out = config.out.resolve()
    lines = [f"make serve ADAPTERS={config.adapter_name}={out} MODEL={config.base}"]
    lines.append(f'guard check --model {config.adapter_name} --policy {out / POLICY_FILE} "some text"')
    if merged:
        lines.append(f"make serve MODEL={out / MERGED_DIR}   # the adapter folded into the weights: full speed")
    return lines


def tune(config: TuneConfig) -> dict[str, Any]:
    """Train (or resume, or re-evaluate) and return the card."""
    if config.eval_only:
        return evaluate_only(config)
    if config.policy is None:
        raise TuneError("--policy FILE is required to train (the guard_policy.yaml the adapter is for)")
    if config.epochs is not None and config.steps is not None:
        raise TuneError("give --epochs or --steps, not both")
    if config.epochs is None and config.steps is None:
        config.epochs = DEFAULT_EPOCHS
    policy, data = _load(config, config.policy)
    try:
        train_rows, held_rows = split(data.rows, config.eval_split, config.seed)
    except TuneDataError as exc:
        raise TuneError(str(exc)) from None
    base_dir = _resolve_base(config.base)
    base_print = fingerprint(base_dir)
    manifest = _manifest(config, data, policy, base_print)
    if _claim_out_dir(config.out, manifest) and (config.out / CARD_JSON).is_file():
        print(
            f"{config.out} already holds this finished run; `guard tune --eval-only` measures it again", file=sys.stderr
        )
        return dict(json.loads((config.out / CARD_JSON).read_text()))
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    result, device = _train(config, base_dir, policy, train_rows)
    if result.interrupted:
        raise TuneInterrupted(
            f"interrupted after step {result.steps}: the checkpoint is in {config.out / 'checkpoints'}; "
            "run the same command to resume"
        )
    shutil.copyfile(policy.path, config.out / POLICY_FILE)
    if config.merge:
        from deploy.adapters import merge_adapter

        merge_adapter(config.out, config.out / MERGED_DIR, str(base_dir))
    card: dict[str, Any] = {
        "schema": 1,
        "name": config.adapter_name,
        "adapter_dir": str(config.out.resolve()),
        "base": {
            "model": config.base,
            "path": str(base_dir),
            "fingerprint": base_print,
            "standin": "standin" in base_dir.name,
        },
        "policy": {
            "name": policy.name,
            "file": POLICY_FILE,
            "sha256": policy.sha256,
            "categories": list(policy.categories),
        },
        "data": {
            "path": str(config.data),
            "sha256": data.sha256,
            "usable": len(data.rows),
            "skipped": len(data.problems),
            "train": len(train_rows),
            "held_out": len(held_rows),
            "counts": data.counts(),
            "held_out_rows": [r.row for r in held_rows],
        },
        "seed": config.seed,
        "training": {
            "rank": config.rank,
            "alpha": 2 * config.rank,
            "lr": config.lr,
            "batch": config.batch,
            "steps": result.steps,
            "epochs": config.epochs,
            "seconds": result.seconds,
            "examples_per_s": result.examples_per_s,
            "tokens_per_s": result.tokens_per_s,
            "final_loss": result.final_loss,
            "resumed_from_step": result.resumed_from,
            "device": device,
            "target_modules": list(_target_modules()),
            "losses": result.losses,
        },
        "started_at": started_at,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "merged": str(config.out / MERGED_DIR) if config.merge else None,
        "evaluation": None,
        "serve": serve_hint(config, config.merge),
    }
    if config.evaluate:
        began = time.monotonic()
        card["evaluation"] = _evaluate(config, base_dir, policy, held_rows)
        card["evaluation"]["seconds"] = time.monotonic() - began
        write_eval(card["evaluation"], config.out)
    write_card(card, config.out)
    shutil.rmtree(config.out / "checkpoints", ignore_errors=True)  # the adapter is the artifact now
    return card


class TuneInterrupted(TuneError):
    """The run stopped early on request; its checkpoint resumes it."""


def _target_modules() -> tuple[str, ...]:
    from guard_tune._train import TARGET_MODULES

    return TARGET_MODULES


def _train(config: TuneConfig, base_dir: Path, policy: TunePolicy, rows: list[LabelledRow]) -> tuple[Any, str]:
    import torch
    from transformers import AutoTokenizer

    from guard_tune._examples import build_example
    from guard_tune._train import TrainSettings, load_lora_model, train

    settings = config_from(TrainSettings, config)
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    examples = [build_example(row, policy, tokenizer) for row in rows]
    model = load_lora_model(str(base_dir), settings)
    result = train(model, examples, tokenizer.pad_token_id, config.out, settings, config.callbacks)
    if not result.interrupted:
        model.save_pretrained(str(config.out))
        _point_adapter_at(config.out, base_dir)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    return result, device


def _point_adapter_at(out: Path, base_dir: Path) -> None:
    """The adapter config names the base directory it was trained on (PEFT writes the path it loaded)."""
    path = out / "adapter_config.json"
    config = json.loads(path.read_text())
    config["base_model_name_or_path"] = str(base_dir)
    path.write_text(json.dumps(config, indent=2) + "\n")


def _evaluate(config: TuneConfig, base_dir: Path, policy: TunePolicy, rows: list[LabelledRow]) -> dict[str, Any]:
    from deploy.launcher import LaunchError
    from guard_tune._evaluate import serve_and_compare

    try:
        return serve_and_compare(str(base_dir), config.adapter_name, config.out.resolve(), rows, policy)
    except LaunchError as exc:
        raise TuneError(f"the evaluation could not serve the adapter: {exc}") from None


def evaluate_only(config: TuneConfig) -> dict[str, Any]:
    """Measure an existing adapter directory against its base on every usable row of `config.data`."""
    adapter = config.out
    card_path = adapter / CARD_JSON
    if not (adapter / ADAPTER_FILE).is_file() or not card_path.is_file():
        raise TuneError(f"--eval-only: {adapter} holds no finished guard tune run ({ADAPTER_FILE} and {CARD_JSON})")
    card = json.loads(card_path.read_text())
    policy, data = _load(config, config.policy or adapter / POLICY_FILE)
    if not data.rows:
        raise TuneError(f"{config.data} has no usable row to evaluate")
    base_dir = _resolve_base(card["base"]["model"])
    if fingerprint(base_dir) != card["base"]["fingerprint"]:
        raise TuneError(f"the base {card['base']['model']} is not the one {adapter} was trained on (fingerprint)")
    evaluation = serve_and_compare_adapter(config, base_dir, card, policy, data.rows)
    evaluation["data"] = {
        "path": str(config.data),
        "sha256": data.sha256,
        "rows": len(data.rows),
        "skipped": len(data.problems),
        "counts": data.counts(),
    }
    target = adapter / "evals" / f"{config.data.stem}-{data.sha256[:8]}"
    write_eval(evaluation, target)
    evaluation["written_to"] = str(target)
    return evaluation


def serve_and_compare_adapter(
    config: TuneConfig, base_dir: Path, card: dict[str, Any], policy: TunePolicy, rows: list[LabelledRow]
) -> dict[str, Any]:
    from deploy.launcher import LaunchError
    from guard_tune._evaluate import serve_and_compare

    try:
        return serve_and_compare(str(base_dir), config.name or card["name"], config.out.resolve(), rows, policy)
    except LaunchError as exc:
        raise TuneError(f"the evaluation could not serve the adapter: {exc}") from None


def summary(card: dict[str, Any]) -> str:
    ev = card.get("evaluation")
    lines = [f"adapter: {card['adapter_dir']} (card.md beside it)"]
    if ev:
        lines.append(
            f"held-out accuracy through vLLM: base {ev['base']['accuracy']:.2f} -> "
            f"adapter {ev['adapter']['accuracy']:.2f} ({ev['adapter']['rows']} rows)"
        )
    t = card["training"]
    lines.append(f"trained {t['steps']} steps in {t['seconds']:.0f} s ({t['examples_per_s']:.1f} examples/s)")
    lines += ["serve it:", *(f"  {line}" for line in card["serve"])]
    return "\n".join(lines)
