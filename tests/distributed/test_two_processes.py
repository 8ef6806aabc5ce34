"""``torchrun --nproc_per_node 2 mixdpo train`` on CPU (gloo): two processes with per-process batch B/2 give
the same losses, final parameters and evaluation as one process with batch B, both exit 0, only rank 0
writes the run directory and evaluates, and the reference log-probs are computed once."""

from __future__ import annotations

import sys

import pytest

from launching import (
    HEADS_USER,
    INDEPENDENT_CLOSED_FORM,
    LORA_GLOBAL,
    LORA_TOP_LAYERS_PROMPT_USER,
    assert_same_run,
    run,
    train_command,
)

CASES = {
    "lora-global": LORA_GLOBAL,
    "heads-user": HEADS_USER,
    "independent-closed-form": INDEPENDENT_CLOSED_FORM,
    "lora-top-layers-prompt+user": LORA_TOP_LAYERS_PROMPT_USER,
    # K backward passes nested in the step's backward: DDP's hooks off, gradients averaged by hand at the
    # last micro-batch of each accumulation
    "lora-sequential-accumulation": (
        "backend=lora",
        "sequential_experts=true",
        "gradient_accumulation_steps=2",
    ),
}


@pytest.mark.parametrize("options", list(CASES.values()), ids=list(CASES))
def test_two_processes_match_one_process_with_the_same_global_batch(
    tmp_path, task, tiny_model, one_process, options
):
    one = one_process(options)
    # --standalone: a local rendezvous on a free port (parallel test runs do not collide)
    command = train_command(tmp_path, task, tiny_model, options, batch=2)
    two = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "mixdpo.cli.main", *command])  # fmt: skip
    # both ranks exit 0 (torchrun returns non-zero if any rank fails or aborts at exit)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "terminate called" not in two.stderr

    assert_same_run(one, tmp_path / "run")

    # reference log-probs: computed by one process, loaded by the other (training set, then the eval set)
    computed = [line for line in two.stderr.splitlines() if "computing reference log-probs" in line]
    assert [line.split(" pairs")[0].split()[-1] for line in computed] == ["48", "12"], computed
    assert all(line.startswith("[rank 0]") for line in computed)
    # only rank 0 printed, evaluated and wrote the run directory
    assert two.stdout.count("done: ") == 1
    assert two.stdout.count("evaluating on") == 1
    assert (tmp_path / "run" / "config.yaml").is_file()
