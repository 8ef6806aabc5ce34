"""The shipped FSDP config (FSDP2, full sharding, blocks as units) on CPU: two processes train exactly as one
process with the same global batch, the saved policy is the gathered full state, evaluation reads it back,
and ``heads`` is refused up front. accelerate enables FSDP only on accelerators; ``fsdp_on_cpu.py`` lifts
that one check (see its docstring)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from launching import assert_same_training, run, train_command, train_one_process
from mixdpo.policy import MixturePolicy
from mixdpo.tasks import write_task

HERE = Path(__file__).resolve().parent
SHIPPED = HERE.parents[1] / "configs" / "accelerate" / "fsdp_full_shard.yaml"

CASES = {
    "lora-global": ["backend=lora", "gate=global"],
    "lora-prompt-top-layers": ["backend=lora", "gate=prompt", "lora_top_layers=1"],
    "independent-closed-form": ["backend=independent", "gate=global", "global_gate_mode=closed_form"],
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp-data")
    return write_task("reviews-users", out, format="text", train_pairs=48, eval_pairs=12, new_user_pairs=12)


@pytest.fixture(scope="module")
def cpu_config(tmp_path_factory) -> Path:
    """The shipped config with only what a 2-core CPU machine needs changed."""
    config = yaml.safe_load(SHIPPED.read_text())
    assert config["distributed_type"] == "FSDP"
    assert config["fsdp_config"]["fsdp_version"] == 2
    config |= {"num_processes": 2, "mixed_precision": "no", "use_cpu": True}
    path = tmp_path_factory.mktemp("fsdp-config") / "fsdp_cpu.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _fsdp_command(out: Path, data, options: list[str], config: Path) -> list[str]:
    options = [f"eval_file={data['eval']}", *options]
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
            "--main_process_port", "0", str(HERE / "fsdp_on_cpu.py"),
            *train_command(out, data["train"], options, batch=2)]  # fmt: skip


def _fsdp(out: Path, data, options: list[str], config: Path) -> subprocess.CompletedProcess:
    return run(_fsdp_command(out, data, options, config))


@pytest.mark.parametrize("options", list(CASES.values()), ids=list(CASES))
def test_fsdp_two_processes_match_one_process(tmp_path, data, cpu_config, options):
    one = train_one_process(tmp_path / "one", data["train"], [f"eval_file={data['eval']}", *options], batch=4)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _fsdp(tmp_path / "two", data, options, cpu_config)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "terminate called" not in two.stderr
    # FSDP really ran: accelerate's FSDP2 preparation wraps the policy in place
    assert "sharded with FSDP" in two.stderr, two.stderr[-3000:]

    assert_same_training(tmp_path / "one" / "run", tmp_path / "two" / "run")
    # evaluation read the gathered policy back: the 1-process run's held-out numbers
    eval_one = json.loads((tmp_path / "one" / "run" / "eval.json").read_text())
    eval_two = json.loads((tmp_path / "two" / "run" / "eval.json").read_text())
    assert eval_two["mixture_accuracy"] == eval_one["mixture_accuracy"]
    assert eval_two["mixture_log_likelihood"] == pytest.approx(eval_one["mixture_log_likelihood"], rel=1e-4)
    assert two.stdout.count("done: ") == 1


def test_heads_is_refused_under_fsdp(tmp_path, data, cpu_config):
    result = _fsdp(tmp_path, data, ["backend=heads"], cpu_config)
    # each process stops with the CLI's user-error status and the message; the launcher then reports the
    # failed processes (its own traceback, not ours)
    assert result.returncode != 0
    assert result.stderr.count("'heads' cannot run under FSDP") == 2, result.stderr[-3000:]
    assert "exitcode: 2" in result.stderr
    assert "[rank0]: Traceback" not in result.stderr
    assert "[rank1]: Traceback" not in result.stderr


def test_fsdp_resume_from_a_checkpoint_is_exact(tmp_path, data, cpu_config):
    full = tmp_path / "full"
    options = ["save_strategy=steps", "save_steps=3"]
    assert _fsdp(full, data, options, cpu_config).returncode == 0
    assert (full / "run" / "checkpoint-3" / "mixdpo_checkpoint.json").is_file()
    part = tmp_path / "part"
    shutil.copytree(full, part)
    shutil.rmtree(part / "run" / "checkpoint-6")
    shutil.rmtree(part / "run" / "policy")
    resumed = run([*_fsdp_command(part, data, options, cpu_config), "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "step 4 " in resumed.stdout  # it went on from step 3, not from the start
    assert "step 1 " not in resumed.stdout
    a = MixturePolicy.from_pretrained(full / "run" / "policy").state_dict()
    b = MixturePolicy.from_pretrained(part / "run" / "policy").state_dict()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=1e-7, msg=name)
