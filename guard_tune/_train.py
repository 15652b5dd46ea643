"""LoRA training with PEFT and transformers' Trainer: the answer-only loss, a progress bar with the loss
and examples/s, checkpoints every few steps, and an interrupt (Ctrl-C, or a callback in tests) that
saves what was done so the same command resumes from it."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from tqdm.auto import tqdm
from transformers import (
    AutoModelForCausalLM,
    PreTrainedModel,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
    set_seed,
)

from guard_tune._examples import Collator, Example, answer_loss

#: Every linear projection of a Qwen3 block: what the planning run (and NemoGuard's recipe) adapts.
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
CHECKPOINTS = "checkpoints"


@dataclass(frozen=True)
class TrainSettings:
    rank: int = 16
    lr: float = 2e-3
    batch: int = 8
    seed: int = 0
    epochs: float | None = None
    steps: int | None = None
    save_every: int = 25

    def lora(self) -> LoraConfig:
        # alpha = 2 x rank and no dropout: the update scale of common LoRA recipes; no dropout keeps a seeded
        # run reproducible and the trained function the one vLLM serves.
        return LoraConfig(
            r=self.rank,
            lora_alpha=2 * self.rank,
            lora_dropout=0.0,
            target_modules=list(TARGET_MODULES),
            task_type="CAUSAL_LM",
        )


@dataclass
class TrainResult:
    steps: int
    examples: int
    tokens: int
    seconds: float
    final_loss: float | None
    interrupted: bool
    resumed_from: int = 0
    losses: list[float] = field(default_factory=list)

    @property
    def examples_per_s(self) -> float:
        return self.examples / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


class _Examples(torch.utils.data.Dataset[dict[str, list[int]]]):
    def __init__(self, examples: Sequence[Example]) -> None:
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        example = self.examples[index]
        return {"input_ids": example.input_ids, "labels": example.labels}


class AnswerTrainer(Trainer):
    """Trainer whose loss computes the LM head on the answer positions only (`answer_loss`)."""

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        loss = answer_loss(model, inputs)
        return (loss, None) if return_outputs else loss


class StopRequest:
    """Set by Ctrl-C (or a test's callback); the trainer then saves a checkpoint and stops after the step."""

    def __init__(self) -> None:
        self.requested = False


class InterruptAfter(TrainerCallback):
    """Interrupt the run once `steps` optimizer steps are done, as Ctrl-C would (for tests: a step count,
    not a clock)."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.stop: StopRequest | None = None

    def on_step_end(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if state.global_step >= self.steps and self.stop is not None:
            self.stop.requested = True


class _Stopper(TrainerCallback):
    def __init__(self, stop: StopRequest) -> None:
        self.stop = stop

    def on_step_end(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.stop.requested:
            control.should_save = True
            control.should_training_stop = True


class _Progress(TrainerCallback):
    """One bar: steps, the latest loss, examples/s over this session's steps."""

    def __init__(self, batch: int, losses: list[float]) -> None:
        self.batch = batch
        self.losses = losses
        self.bar: Any = None
        self.started = 0.0
        self.first_step = 0

    def on_train_begin(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="tune", unit="step", dynamic_ncols=True)
        self.started, self.first_step = time.monotonic(), state.global_step

    def on_step_end(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.bar is None:
            return
        self.bar.update(state.global_step - self.bar.n)
        elapsed = time.monotonic() - self.started
        rate = (state.global_step - self.first_step) * self.batch / elapsed if elapsed else 0.0
        self.bar.set_postfix(loss=f"{self.losses[-1]:.4f}" if self.losses else "-", ex_s=f"{rate:.1f}", refresh=False)

    def on_log(
        self, args: Any, state: TrainerState, control: TrainerControl, logs: dict[str, float] | None = None, **kw: Any
    ) -> None:
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))

    def on_train_end(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.close()


@contextmanager
def _ctrl_c_requests_stop(stop: StopRequest) -> Iterator[None]:
    """The first Ctrl-C asks for a clean stop (a checkpoint of what was done); a second one aborts."""
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.requested:
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        stop.requested = True
        print("\ninterrupt: saving a checkpoint after this step (Ctrl-C again to abort)", flush=True)

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def training_dtype() -> torch.dtype:
    """bf16 where the accelerator has it; float32 on the CPU (few CPUs multiply bf16 natively)."""
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_lora_model(base_path: str, settings: TrainSettings, dtype: torch.dtype | None = None) -> PeftModel:
    set_seed(settings.seed)  # the LoRA A matrices are drawn here
    base: PreTrainedModel = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype or training_dtype())
    base.config.use_cache = False
    return get_peft_model(base, settings.lora())


def train(
    model: PeftModel,
    examples: Sequence[Example],
    pad_id: int,
    out: Path,
    settings: TrainSettings,
    callbacks: Sequence[TrainerCallback] = (),
) -> TrainResult:
    """Train (or resume) the adapter; checkpoints under `out/checkpoints`."""
    checkpoints = out / CHECKPOINTS
    resume = any(checkpoints.glob("checkpoint-*"))
    args = TrainingArguments(
        output_dir=str(checkpoints),
        per_device_train_batch_size=settings.batch,
        num_train_epochs=settings.epochs if settings.epochs is not None else 1.0,
        max_steps=settings.steps if settings.steps is not None else -1,
        learning_rate=settings.lr,
        seed=settings.seed,
        data_seed=settings.seed,
        save_strategy="steps",
        save_steps=settings.save_every,
        save_total_limit=2,
        logging_strategy="steps",
        logging_steps=1,
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
        bf16=training_dtype() is torch.bfloat16,
    )
    losses: list[float] = []
    stop = StopRequest()
    for callback in callbacks:
        if isinstance(callback, InterruptAfter):
            callback.stop = stop
    trainer = AnswerTrainer(
        model=model,
        args=args,
        train_dataset=_Examples(examples),
        data_collator=Collator(pad_id),
        callbacks=[*callbacks, _Stopper(stop), _Progress(settings.batch, losses)],
    )
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    started_at = 0
    if resume:
        started_at = int(max(checkpoints.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])).name[11:])
    began = time.monotonic()
    with _ctrl_c_requests_stop(stop):
        trainer.train(resume_from_checkpoint=True if resume else None)
    seconds = time.monotonic() - began
    state = trainer.state
    done = state.global_step - started_at
    # Tokens actually run through the model in this session (padding excluded), from the sampler's order.
    mean_tokens = sum(len(e.input_ids) for e in examples) / max(len(examples), 1)
    return TrainResult(
        steps=state.global_step,
        examples=done * settings.batch,
        tokens=round(done * settings.batch * mean_tokens),
        seconds=seconds,
        final_loss=losses[-1] if losses else None,
        interrupted=stop.requested,
        resumed_from=started_at,
        losses=losses,
    )
