"""Launch ``mixdpo train`` in one process or several (torchrun, accelerate launch) for the distributed tests,
and read back what the runs wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from mixdpo.policy import MixturePolicy


def train_command(out: Path, train_file: Path, options: list[str], batch: int) -> list[str]:
    """``mixdpo train`` arguments: a tiny model, 6 AdamW steps, a loss logged every step."""
    return [
        "train", "model=random:llama-tiny", f"train_file={train_file}", "max_steps=6",
        "learning_rate=1e-3", "gate_learning_rate=0.1", "logging_steps=1", "disable_tqdm=true",
        f"reference_cache_dir={out / 'cache'}", f"output_dir={out / 'run'}",
        f"per_device_train_batch_size={batch}", *options,
    ]  # fmt: skip


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MIXDPO_LOG_LEVEL": "info"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, check=False)


def train_one_process(
    out: Path, train_file: Path, options: list[str], batch: int
) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "mixdpo.cli.main", *train_command(out, train_file, options, batch)])


def losses(run_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [row["loss"] for row in rows if "loss" in row]


def assert_same_training(one: Path, two: Path) -> None:
    """Two run directories trained the same: equal losses, and saved parameters equal up to the noise that
    Adam makes of summation-order differences."""
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
