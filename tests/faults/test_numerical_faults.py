"""Non-finite gradients are detected, the step is skipped (no parameter moves) and counted; a run that
keeps producing them stops with a message that says what to change; half precision stays finite."""

from __future__ import annotations

import json

import pytest
import torch

from mixdpo.cli.main import main
from mixdpo.data import build_preference_dataset
from mixdpo.errors import NumericalFault
from mixdpo.policy import MixturePolicy
from mixdpo.trainer import MixDPOConfig, MixDPOTrainer


def trainer_for(tmp_path, task, **options):
    args = MixDPOConfig(
        output_dir=str(tmp_path), model="random:llama-tiny", lora_r=4, learning_rate=3e-3,
        per_device_train_batch_size=8, logging_steps=1, disable_tqdm=True, **options,
    )  # fmt: skip
    policy = MixturePolicy.create(args.policy_config())
    dataset, _ = build_preference_dataset(task["train"], policy.tokenizer, args.tokenization_settings())
    return MixDPOTrainer(policy, args, train_dataset=dataset), policy


def poison_steps(monkeypatch, trainer, steps: set[int]):
    """Make the loss NaN on the given (0-based) optimizer steps: a fault injected at the objective."""
    original = MixDPOTrainer.compute_loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss = original(self, model, inputs, return_outputs, num_items_in_batch)
        if model.training and self.state.global_step in steps:
            loss = loss * float("nan")
        return loss

    monkeypatch.setattr(MixDPOTrainer, "compute_loss", compute_loss)


def trainable(policy):
    return {n: p.detach().clone() for n, p in policy.named_parameters() if p.requires_grad}


def test_a_nan_step_is_skipped_and_counted(tmp_path, small_task, monkeypatch):
    trainer, policy = trainer_for(tmp_path, small_task, max_steps=4)
    poison_steps(monkeypatch, trainer, {1, 2})
    snapshots = {}

    class Snapshot:
        def on_step_end(self, args, state, control, **kwargs):
            snapshots[state.global_step] = trainable(policy)

    from transformers import TrainerCallback

    trainer.add_callback(type("SnapshotCallback", (TrainerCallback,), {"on_step_end": Snapshot.on_step_end}))
    trainer.train()
    assert trainer.nonfinite.skipped == 2
    # steps 2 and 3 (1-based) were the poisoned ones: nothing moved during them
    assert all(torch.equal(snapshots[1][n], snapshots[3][n]) for n in snapshots[1])
    assert any(not torch.equal(snapshots[3][n], snapshots[4][n]) for n in snapshots[3])
    assert all(torch.isfinite(p).all() for p in snapshots[4].values())
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert max(r.get("train/skipped_nonfinite_steps", 0) for r in logged) == 2


def test_consecutive_nan_steps_stop_the_run(tmp_path, small_task, monkeypatch):
    trainer, _ = trainer_for(tmp_path, small_task, max_steps=20, max_nonfinite_steps=3)
    poison_steps(monkeypatch, trainer, set(range(2, 20)))
    with pytest.raises(NumericalFault, match="3 steps in a row") as info:
        trainer.train()
    assert "learning_rate" in str(info.value)
    assert trainer.state.global_step == 5


def test_a_diverging_run_stops_through_the_cli_with_exit_2(tmp_path, small_task, capsys):
    code = main(["train", f"output_dir={tmp_path}", "model=random:llama-tiny",
                 f"train_file={small_task['train']}", "learning_rate=1e8", "max_grad_norm=0", "max_steps=30",
                 "per_device_train_batch_size=4", "disable_tqdm=true"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "non-finite" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_training_stays_finite(tmp_path, small_task, dtype):
    trainer, _ = trainer_for(tmp_path, small_task, max_steps=3, model_dtype=dtype, beta=5.0)
    trainer.train()
    assert trainer.nonfinite.skipped == 0
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(r["loss"] is not None for r in logged if "loss" in r)
