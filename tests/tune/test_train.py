"""Training on the tiny stand-in: the head-only loss is transformers' loss, a seed makes a run repeatable, and an
interrupted run resumes to the adapter the uninterrupted run makes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from guard_tune import TuneConfig, TuneInterrupted, load_policy, read_labelled, split, tune
from guard_tune._examples import Collator, answer_loss, build_example, naive_loss
from guard_tune._train import InterruptAfter, TrainSettings, load_lora_model
from tests.tune.conftest import example_rows, write_jsonl

STEPS = 4


def test_the_head_only_loss_and_its_gradients_equal_transformers_loss(
    tmp_path: Path, policy_file: Path, tiny_base: str
) -> None:
    from transformers import AutoTokenizer

    policy = load_policy(policy_file)
    data = read_labelled(write_jsonl(tmp_path / "d.jsonl", example_rows(6)), policy)
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    examples = [build_example(row, policy, tokenizer) for row in data.rows]
    batch = Collator(tokenizer.pad_token_id)([{"input_ids": e.input_ids, "labels": e.labels} for e in examples])
    assert batch["attention_mask"].sum() < batch["attention_mask"].numel()  # padding is in play
    model = load_lora_model(tiny_base, TrainSettings(seed=3), dtype=torch.float32)
    # A non-zero B so the LoRA path changes the answer and its gradients reach A too.
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.5)
    grads = []
    for loss_of in (answer_loss, naive_loss):
        model.zero_grad()
        loss = loss_of(model, batch)
        loss.backward()
        grads.append((loss.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]))
    (head_only, head_grads), (naive, naive_grads) = grads
    assert torch.allclose(head_only, naive, rtol=1e-5, atol=1e-5)
    assert len(head_grads) > 0 and all(
        torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(head_grads, naive_grads, strict=True)
    )


def _adapter(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "adapter_model.safetensors"))


def _config(data: Path, out: Path, policy: Path, seed: int = 0, **kw: object) -> TuneConfig:
    return TuneConfig(
        data=data,
        out=out,
        policy=policy,
        steps=STEPS,
        batch=4,
        rank=4,
        save_every=100,
        seed=seed,
        evaluate=False,
        **kw,  # type: ignore[arg-type]
    )


def test_a_seeded_run_repeats_and_an_interrupted_run_resumes_to_the_same_adapter(
    tmp_path: Path, policy_file: Path, tiny_base: str
) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", example_rows(40))
    straight = tmp_path / "straight"
    card = tune(_config(data, straight, policy_file))
    assert (
        card["training"]["steps"] == STEPS and (straight / "guard_policy.yaml").read_bytes() == policy_file.read_bytes()
    )
    assert not (straight / "checkpoints").exists()
    _, held = split(read_labelled(data, load_policy(policy_file)).rows, 0.2, 0)
    assert card["data"]["held_out_rows"] == [r.row for r in held]  # the held-out rows are not trained on
    assert card["data"]["train"] + card["data"]["held_out"] == 40

    again = tmp_path / "again"
    tune(_config(data, again, policy_file))
    first, second = _adapter(straight), _adapter(again)
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)

    other_seed = tmp_path / "seed1"
    tune(_config(data, other_seed, policy_file, seed=1))
    assert not all(torch.equal(first[k], _adapter(other_seed)[k]) for k in first)

    # Interrupted after 2 of 4 steps (as Ctrl-C does: a checkpoint, no adapter), then the same command resumes.
    resumed = tmp_path / "resumed"
    with pytest.raises(TuneInterrupted, match=r"interrupted after step 2: .* run the same command to resume"):
        tune(_config(data, resumed, policy_file, callbacks=[InterruptAfter(2)]))
    assert (resumed / "checkpoints" / "checkpoint-2").is_dir() and not (resumed / "adapter_model.safetensors").exists()
    card = tune(_config(data, resumed, policy_file))
    assert card["training"]["resumed_from_step"] == 2 and card["training"]["steps"] == STEPS
    assert all(torch.allclose(first[k], _adapter(resumed)[k], rtol=0, atol=1e-6) for k in first)
