"""Launch ``mixdpo train`` in one process or several (torchrun, accelerate launch) for the distributed tests,
and compare what the runs wrote. The fixtures (task, model, cached 1-process runs) are in
``tests/distributed/conftest.py``."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from mixdpo.policy import MixturePolicy

# Option sets shared by the DDP, FSDP and DeepSpeed tests, so that one 1-process run serves all of them.
# Deterministic options only: Gumbel warm-up noise and user dropout draw per-process random numbers, so a
# 2-process run could not match a 1-process one draw for draw.
LORA_GLOBAL = ("backend=lora", "gate=global")
HEADS_USER = ("backend=heads", "gate=user", "user_dropout=0.0")
INDEPENDENT_CLOSED_FORM = ("backend=independent", "gate=global", "global_gate_mode=closed_form")
LORA_TOP_LAYERS_PROMPT_USER = ("backend=lora", "lora_top_layers=1", "gate=prompt+user", "user_dropout=0.0")


def train_command(out: Path, task: dict, model: Path, options: tuple[str, ...], batch: int) -> list[str]:
    """``mixdpo train`` arguments: a tiny model, 6 AdamW steps, a loss logged every step, then evaluation."""
    return [
        "train", f"model={model}", f"train_file={task['train']}", f"eval_file={task['eval']}", "max_steps=6",
        "learning_rate=1e-3", "gate_learning_rate=0.1", "logging_steps=1", "disable_tqdm=true",
        f"reference_cache_dir={out / 'cache'}", f"output_dir={out / 'run'}",
        f"per_device_train_batch_size={batch}", *options,
    ]  # fmt: skip


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MIXDPO_LOG_LEVEL": "info"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, check=False)


def losses(run_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [row["loss"] for row in rows if "loss" in row]


def assert_same_run(one: Path, two: Path) -> None:
    """Two run directories trained and evaluated the same: equal losses, saved parameters equal up to the
    noise that Adam makes of summation-order differences, the same held-out log-likelihood."""
    losses_one, losses_two = losses(one), losses(two)
    assert len(losses_one) == len(losses_two) == 6
    # up to floating-point summation order (gradients are averaged across processes)
    torch.testing.assert_close(losses_two, losses_one, rtol=1e-5, atol=1e-5)
    a = MixturePolicy.from_pretrained(one / "policy").state_dict()
    b = MixturePolicy.from_pretrained(two / "policy").state_dict()
    assert a.keys() == b.keys()
    # Adam turns summation-order differences of near-zero gradient entries into differences of up to a
    # few percent of one step (lr 1e-3): measured 1.3e-5 for full fine-tuning; the tolerance is 5% of lr
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=5e-5, msg=name)
    eval_one = json.loads((one / "eval.json").read_text())
    eval_two = json.loads((two / "eval.json").read_text())
    assert eval_two["mixture_log_likelihood"] == pytest.approx(eval_one["mixture_log_likelihood"], rel=1e-4)
