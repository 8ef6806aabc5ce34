"""``torchrun --nproc_per_node 2 mixdpo train`` on CPU (gloo): two processes with per-process batch B/2 give
the same losses and final parameters as one process with batch B, both exit 0, only rank 0 writes the run
directory, and the reference log-probs are computed once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from launching import assert_same_training, run, train_command, train_one_process
from mixdpo.tasks import write_task

# Deterministic options only: Gumbel warm-up noise and user dropout draw per-process random numbers, so a
# 2-process run could not match a 1-process one draw for draw.
CASES = {
    "lora-global": ["backend=lora", "gate=global"],
    "heads-user": ["backend=heads", "gate=user", "user_dropout=0.0"],
    "independent-closed-form": ["backend=independent", "gate=global", "global_gate_mode=closed_form"],
    "lora-top-layers-prompt": ["backend=lora", "lora_top_layers=1", "gate=prompt"],
    "lora-prompt+user": ["backend=lora", "gate=prompt+user", "user_dropout=0.0"],
    # K backward passes nested in the step's backward: DDP's hooks off, gradients averaged by hand
    "lora-sequential": ["backend=lora", "sequential_experts=true"],
    "independent-sequential-accumulation": [
        "backend=independent",
        "sequential_experts=true",
        "gradient_accumulation_steps=2",
    ],
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp-data")
    return write_task("reviews-users", out, format="text", train_pairs=48, eval_pairs=12, new_user_pairs=12)


def _train(out: Path, data, options: list[str], processes: int, batch: int) -> subprocess.CompletedProcess:
    options = [f"eval_file={data['eval']}", *options]
    if processes == 1:
        return train_one_process(out, data["train"], options, batch)
    # --standalone: a local rendezvous on a free port (parallel test runs do not collide)
    return run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                str(processes), "-m", "mixdpo.cli.main",
                *train_command(out, data["train"], options, batch)])  # fmt: skip


@pytest.mark.parametrize("options", list(CASES.values()), ids=list(CASES))
def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path, data, options):
    one = _train(tmp_path / "one", data, options, processes=1, batch=4)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _train(tmp_path / "two", data, options, processes=2, batch=2)
    # both ranks exit 0 (torchrun returns non-zero if any rank fails or aborts at exit)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "terminate called" not in two.stderr

    assert_same_training(tmp_path / "one" / "run", tmp_path / "two" / "run")

    # reference log-probs: computed by one process, loaded by the other (training set, then the eval set)
    computed = [line for line in two.stderr.splitlines() if "computing reference log-probs" in line]
    assert [line.split(" pairs")[0].split()[-1] for line in computed] == ["48", "12"], computed
    assert all(line.startswith("[rank 0]") for line in computed)
    # only rank 0 printed and wrote the run directory
    assert two.stdout.count("done: ") == 1
    assert (tmp_path / "two" / "run" / "config.yaml").is_file()
    # evaluated once, by rank 0, with the 1-process run's numbers
    assert two.stdout.count("evaluating on") == 1
    eval_one = json.loads((tmp_path / "one" / "run" / "eval.json").read_text())
    eval_two = json.loads((tmp_path / "two" / "run" / "eval.json").read_text())
    assert eval_two["mixture_log_likelihood"] == pytest.approx(eval_one["mixture_log_likelihood"], rel=1e-4)
