"""The shipped DeepSpeed configs (ZeRO-2, ZeRO-3) on CPU, through ``accelerate launch`` unchanged (DeepSpeed's
CPU accelerator, gloo): two processes train as one process with the same global batch, the saved policy is
complete, evaluation runs, and what cannot run is refused up front."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from launching import assert_same_training, run, train_command, train_one_process
from mixdpo.policy import PolicyConfig
from mixdpo.policy.build import load_base
from mixdpo.tasks import write_task

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "accelerate"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("deepspeed-data")
    return write_task("reviews-users", out, format="text", train_pairs=48, eval_pairs=12, new_user_pairs=12)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    """random:llama-tiny saved to a directory: ZeRO-3 builds models partitioned (zero.Init), which draws a
    random: model's initial weights differently; loaded weights are the same in every launch."""
    out = tmp_path_factory.mktemp("llama-tiny")
    base = load_base(PolicyConfig(model="random:llama-tiny"))
    base.model.save_pretrained(out)
    base.tokenizer.save_pretrained(out)
    return out


def _cpu_config(name: str, tmp_path: Path) -> Path:
    """The shipped config with only what a 2-core CPU machine needs changed."""
    config = yaml.safe_load((CONFIGS / name).read_text())
    assert config["distributed_type"] == "DEEPSPEED"
    config |= {"num_processes": 2, "mixed_precision": "no"}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


def _deepspeed(out: Path, data, options: list[str], config: Path) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
                "--main_process_port", "0", "-m", "mixdpo.cli.main",
                *train_command(out, data["train"], options, batch=2)])  # fmt: skip


CASES = {
    "zero2-lora-global": ("deepspeed_zero2.yaml", ["backend=lora", "gate=global"]),
    "zero2-heads-user": ("deepspeed_zero2.yaml", ["backend=heads", "gate=user", "user_dropout=0.0"]),
    "zero3-lora-prompt": ("deepspeed_zero3.yaml", ["backend=lora", "gate=prompt"]),
}


@pytest.mark.parametrize(("config", "options"), list(CASES.values()), ids=list(CASES))
def test_deepspeed_two_processes_match_one_process(tmp_path, data, saved_model, config, options):
    options = [f"model={saved_model}", f"eval_file={data['eval']}", *options]
    one = train_one_process(tmp_path / "one", data["train"], options, batch=4)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _deepspeed(tmp_path / "two", data, options, _cpu_config(config, tmp_path))
    assert two.returncode == 0, two.stderr[-3000:]
    assert "terminate called" not in two.stderr
    stage = 3 if "zero3" in config else 2
    assert f"parameters sharded with DeepSpeed ZeRO-{stage}" in two.stderr

    assert_same_training(tmp_path / "one" / "run", tmp_path / "two" / "run")
    eval_one = json.loads((tmp_path / "one" / "run" / "eval.json").read_text())
    eval_two = json.loads((tmp_path / "two" / "run" / "eval.json").read_text())
    assert eval_two["mixture_log_likelihood"] == pytest.approx(eval_one["mixture_log_likelihood"], rel=1e-4)
    assert two.stdout.count("done: ") == 1


def test_heads_is_refused_under_zero3(tmp_path, data):
    result = _deepspeed(tmp_path, data, ["backend=heads"], _cpu_config("deepspeed_zero3.yaml", tmp_path))
    assert result.returncode != 0
    assert result.stderr.count("'heads' cannot run under DeepSpeed ZeRO-3") == 2, result.stderr[-3000:]
    assert "exitcode: 2" in result.stderr
