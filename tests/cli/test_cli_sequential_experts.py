"""``sequential_experts=true`` through the CLI: the same trained experts as the joint step, refused with the
reason where it does not apply."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from mixdpo.cli.main import main

TINY = ["model=random:llama-tiny", "lora_r=4", "learning_rate=3e-3", "per_device_train_batch_size=8"]
TINY += ["disable_tqdm=true", "max_length=256", "max_steps=4", "logging_steps=1", "num_experts=3"]


def _train(run_dir, small_task, *extra) -> dict[str, torch.Tensor]:
    args = ["train", f"output_dir={run_dir}", f"train_file={small_task['train']}", *TINY, *extra]
    assert main(args) == 0
    weights = {}
    for path in sorted((run_dir / "policy").rglob("*.safetensors")):
        weights |= {f"{path.relative_to(run_dir)}:{k}": v for k, v in load_file(path).items()}
    assert weights
    return weights


@pytest.mark.parametrize("backend", ["lora", "independent"])
def test_sequential_experts_trains_the_same_experts(tmp_path, small_task, backend):
    joint = _train(tmp_path / "joint", small_task, f"backend={backend}")
    sequential = _train(tmp_path / "seq", small_task, f"backend={backend}", "sequential_experts=true")
    assert sequential.keys() == joint.keys()
    for name, value in joint.items():
        # four Adam steps on the same gradients up to float summation order
        torch.testing.assert_close(sequential[name], value, rtol=1e-4, atol=1e-5, msg=name)
    losses = [
        [json.loads(line).get("loss") for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        for run in ("joint", "seq")
    ]
    assert [x for x in losses[0] if x is not None] == pytest.approx([x for x in losses[1] if x is not None])


def test_sequential_experts_runs_in_bf16(tmp_path, small_task):
    _train(tmp_path / "bf16", small_task, "sequential_experts=true", "bf16=true", "use_cpu=true")


def test_sequential_experts_with_heads_is_refused(tmp_path, small_task, capsys):
    args = ["train", f"output_dir={tmp_path}", f"train_file={small_task['train']}", *TINY]
    assert main([*args, "backend=heads", "sequential_experts=true"]) == 2
    err = capsys.readouterr().err
    assert "sequential_experts" in err
    assert "heads already runs its trunk once" in err
