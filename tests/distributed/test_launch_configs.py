"""The shipped accelerate launch configs load with accelerate and name what exists; the 2-process CPU config
launches `mixdpo train`; backends that cannot run under parameter sharding are refused up front."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType

from mixdpo.errors import ConfigError
from mixdpo.policy import MixturePolicy, PolicyConfig
from mixdpo.tasks import write_task
from mixdpo.trainer.distributed import check_backend_supported

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "accelerate"
EXPECTED = {
    "cpu_2proc.yaml": DistributedType.MULTI_CPU,
    "ddp.yaml": DistributedType.MULTI_GPU,
    "ddp_multinode.yaml": DistributedType.MULTI_GPU,
    "fsdp_full_shard.yaml": DistributedType.FSDP,
    "deepspeed_zero2.yaml": DistributedType.DEEPSPEED,
    "deepspeed_zero3.yaml": DistributedType.DEEPSPEED,
}


def test_every_shipped_config_is_tested():
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_loads_with_accelerate(name):
    config = load_config_from_file(str(CONFIGS / name))
    assert config.distributed_type == EXPECTED[name]
    assert config.num_processes >= 2
    if name == "ddp_multinode.yaml":
        assert config.num_machines == 2
        assert config.main_process_ip
        assert config.main_process_port
    if config.distributed_type == DistributedType.FSDP:
        assert config.fsdp_config["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
        # no class list: accelerate requires every listed class to be in the model, so a list naming
        # several architectures fails on each of them; it falls back to the policy's _no_split_modules
        assert "fsdp_transformer_layer_cls_to_wrap" not in config.fsdp_config
    if config.distributed_type == DistributedType.DEEPSPEED:
        stage = config.deepspeed_config["zero_stage"]
        assert stage == (3 if "zero3" in name else 2)
        assert config.deepspeed_config["zero3_init_flag"] is False


@pytest.mark.parametrize(
    ("model", "backend", "block"),
    [("random:gpt2-tiny", "lora", "GPT2Block"), ("random:llama-tiny", "independent", "LlamaDecoderLayer")],
)
def test_fsdp_wraps_the_blocks_of_the_experts_model(model, backend, block):
    from accelerate.utils import FullyShardedDataParallelPlugin

    policy = MixturePolicy.create(PolicyConfig(model=model, backend=backend, num_experts=2))
    assert policy._no_split_modules == [block]
    # what accelerate does with the shipped config's TRANSFORMER_BASED_WRAP and no class list
    plugin = FullyShardedDataParallelPlugin(fsdp_version=2, auto_wrap_policy="transformer_based_wrap")
    plugin.set_auto_wrap_policy(policy)
    assert {cls.__name__ for cls in plugin.auto_wrap_policy.keywords["transformer_layer_cls"]} == {block}


@pytest.mark.parametrize(("fsdp", "zero_stage"), [(True, None), (False, 3)])
def test_heads_is_refused_under_parameter_sharding(fsdp, zero_stage):
    with pytest.raises(ConfigError, match="'heads' cannot run under"):
        check_backend_supported("heads", fsdp=fsdp, zero_stage=zero_stage)
    check_backend_supported("lora", fsdp=fsdp, zero_stage=zero_stage)
    check_backend_supported("independent", fsdp=fsdp, zero_stage=zero_stage)


@pytest.mark.parametrize("zero_stage", [None, 1, 2])
def test_heads_runs_with_ddp_and_zero2(zero_stage):
    check_backend_supported("heads", fsdp=False, zero_stage=zero_stage)


def test_accelerate_launch_with_the_cpu_config(tmp_path):
    # with the options that draw per-process random numbers (Gumbel warm-up, user dropout) and the
    # regularisers: no hang, both processes exit 0
    data = write_task("reviews-users", tmp_path / "data", format="text", train_pairs=24, eval_pairs=12,
                      new_user_pairs=12)  # fmt: skip
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / "cpu_2proc.yaml"),
        "--main_process_port", "0", "-m", "mixdpo.cli.main", "train", "model=random:llama-tiny",
        f"train_file={data['train']}", "max_steps=2", "per_device_train_batch_size=2", "disable_tqdm=true",
        "gate=prompt+user", "estep_warmup_mode=gumbel", "user_dropout=0.3", "load_balance_weight=0.1",
        "gate_entropy_weight=0.01",
        f"output_dir={tmp_path / 'run'}", f"reference_cache_dir={tmp_path / 'cache'}",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("done: ") == 1  # rank 0 only
    assert (tmp_path / "run" / "policy").is_dir()
