"""Resuming from a checkpoint ends at the same parameters as an uninterrupted run (bit for bit on CPU)."""

from __future__ import annotations

import shutil

import torch

from mixdpo.policy import MixturePolicy
from mixdpo.trainer.config_io import load_config
from mixdpo.workflows import train_run


def config(run_dir, task, *extra):
    return load_config(None, [
        f"output_dir={run_dir}", "model=random:llama-tiny", f"train_file={task['train']}", "gate=user",
        "lora_r=4", "learning_rate=3e-3", "per_device_train_batch_size=4", "max_steps=6",
        "save_strategy=steps", "save_steps=3", "disable_tqdm=true", "estep_warmup_steps=2", "estep=gumbel",
        "user_dropout=0.2", *extra,
    ])  # fmt: skip


def test_resume_gives_the_same_final_parameters(tmp_path, small_task):
    straight = tmp_path / "straight"
    train_run(config(straight, small_task), log=lambda _: None)
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    # An interrupted run: it got as far as the checkpoint at step 3 (the bytes an interrupted run writes).
    shutil.copytree(straight / "checkpoint-3", resumed / "checkpoint-3")
    train_run(config(resumed, small_task), resume=True, log=lambda _: None)
    a = MixturePolicy.from_pretrained(straight / "policy").state_dict()
    b = MixturePolicy.from_pretrained(resumed / "policy").state_dict()
    assert a.keys() == b.keys()
    differing = [name for name in a if not torch.equal(a[name], b[name])]
    assert differing == []
    # and the run really trained: the adapters moved away from their initial values
    start = MixturePolicy.from_pretrained(straight / "checkpoint-3").state_dict()
    assert any(not torch.equal(a[n], start[n]) for n in a if "lora_B" in n)
