"""The shipped DeepSpeed configs (ZeRO-2, ZeRO-3) on CPU, through ``accelerate launch`` unchanged (DeepSpeed's
CPU accelerator, gloo): two processes train and evaluate as one process with the same global batch, and what
cannot run is refused up front."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from launching import HEADS_USER, LORA_TOP_LAYERS_PROMPT_USER, assert_same_run, run, train_command

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "accelerate"
CASES = {
    # ZeRO-2 keeps parameters whole: even heads runs
    "zero2-heads-user": ("deepspeed_zero2.yaml", HEADS_USER),
    # ZeRO-3 partitions them: references computed in the step, evaluation of the saved policy
    "zero3-lora-top-layers-prompt+user": ("deepspeed_zero3.yaml", LORA_TOP_LAYERS_PROMPT_USER),
}


def _command(out: Path, task, model, options: tuple[str, ...], name: str) -> list[str]:
    """Launch with the shipped config, only the process count and mixed precision changed for 2 CPU cores."""
    config = yaml.safe_load((CONFIGS / name).read_text())
    assert config["distributed_type"] == "DEEPSPEED"
    config |= {"num_processes": 2, "mixed_precision": "no"}
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_text(yaml.safe_dump(config))
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(out / name),
            "--main_process_port", "0", "-m", "mixdpo.cli.main",
            *train_command(out, task, model, options, batch=2)]  # fmt: skip


@pytest.mark.parametrize(("config", "options"), list(CASES.values()), ids=list(CASES))
def test_deepspeed_two_processes_match_one_process(tmp_path, task, tiny_model, one_process, config, options):
    two = run(_command(tmp_path, task, tiny_model, options, config))
    assert two.returncode == 0, two.stderr[-3000:]
    assert "terminate called" not in two.stderr
    stage = 3 if "zero3" in config else 2
    assert f"parameters sharded with DeepSpeed ZeRO-{stage}" in two.stderr
    assert_same_run(one_process(options), tmp_path / "run")
    assert two.stdout.count("done: ") == 1


def test_heads_is_refused_under_zero3(tmp_path, task, tiny_model):
    result = run(_command(tmp_path, task, tiny_model, ("backend=heads",), "deepspeed_zero3.yaml"))
    assert result.returncode != 0
    assert result.stderr.count("'heads' cannot run under DeepSpeed ZeRO-3") == 2, result.stderr[-3000:]
    assert "exitcode: 2" in result.stderr
