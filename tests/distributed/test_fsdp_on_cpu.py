"""The shipped FSDP config (FSDP2, full sharding, blocks as units) on CPU: two processes train exactly as one
process with the same global batch, the saved policy is the gathered full state, evaluation reads it back,
and resuming loads a checkpoint into the shards. accelerate enables FSDP only on accelerators;
``fsdp_on_cpu.py`` lifts that one check (see its docstring). The ``heads`` refusal is unit-tested in
test_launch_configs.py and launched in test_deepspeed_on_cpu.py (ZeRO-3)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml

from launching import (
    INDEPENDENT_CLOSED_FORM,
    LORA_GLOBAL,
    LORA_TOP_LAYERS_PROMPT_USER,
    assert_same_run,
    run,
    train_command,
)
from mixdpo.policy import MixturePolicy

HERE = Path(__file__).resolve().parent
SHIPPED = HERE.parents[1] / "configs" / "accelerate" / "fsdp_full_shard.yaml"
# (lora with the global gate runs under FSDP in the resume test)
CASES = {
    "lora-top-layers-prompt+user": LORA_TOP_LAYERS_PROMPT_USER,
    "independent-closed-form": INDEPENDENT_CLOSED_FORM,
}


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


def _command(out: Path, task, model, options: tuple[str, ...], config: Path) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
            "--main_process_port", "0", str(HERE / "fsdp_on_cpu.py"),
            *train_command(out, task, model, options, batch=2)]  # fmt: skip


@pytest.mark.parametrize("options", list(CASES.values()), ids=list(CASES))
def test_fsdp_two_processes_match_one_process(tmp_path, task, tiny_model, one_process, cpu_config, options):
    two = run(_command(tmp_path, task, tiny_model, options, cpu_config))
    assert two.returncode == 0, two.stderr[-3000:]
    assert "terminate called" not in two.stderr
    # FSDP really ran: the trainer saw accelerate's FSDP launch
    assert "parameters sharded with FSDP" in two.stderr, two.stderr[-3000:]
    # trained as one process; evaluation read the gathered policy back and got the same numbers
    assert_same_run(one_process(options), tmp_path / "run")
    assert two.stdout.count("done: ") == 1


def test_fsdp_resume_from_a_checkpoint_is_exact(tmp_path, task, tiny_model, cpu_config):
    options = (*LORA_GLOBAL, "save_strategy=steps", "save_steps=3")
    full = tmp_path / "full"
    assert run(_command(full, task, tiny_model, options, cpu_config)).returncode == 0
    assert (full / "run" / "checkpoint-3" / "mixdpo_checkpoint.json").is_file()
    part = tmp_path / "part"
    shutil.copytree(full, part)
    shutil.rmtree(part / "run" / "checkpoint-6")
    shutil.rmtree(part / "run" / "policy")
    resumed = run([*_command(part, task, tiny_model, options, cpu_config), "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "step 4 " in resumed.stdout  # it went on from step 3, not from the start
    assert "step 1 " not in resumed.stdout
    a = MixturePolicy.from_pretrained(full / "run" / "policy").state_dict()
    b = MixturePolicy.from_pretrained(part / "run" / "policy").state_dict()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=1e-7, msg=name)
