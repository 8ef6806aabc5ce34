"""The objective schedule, the optimizer's parameter groups, the closed-form gate and logged metrics."""

from __future__ import annotations

import json

import pytest
import torch

from mixdpo.data import build_preference_dataset
from mixdpo.objective import ObjectiveConfig
from mixdpo.policy import MixturePolicy
from mixdpo.trainer import MixDPOConfig, MixDPOTrainer, ObjectiveSchedule


def test_schedule_warmups_and_annealing():
    base = ObjectiveConfig(
        estep="tempered", estep_temperature=2.0, gate_loss_weight=0.5, load_balance_weight=0.1
    )
    schedule = ObjectiveSchedule(
        base, num_experts=2, total_steps=110, estep_warmup_steps=10, gate_warmup_steps=5,
        final_temperature=0.5, schedule="linear",
    )  # fmt: skip
    first = schedule.at(0)
    assert first.objective.estep == "hard"
    assert first.objective.gate_loss_weight == 0.0
    assert first.objective.load_balance_weight == 0.0
    assert schedule.at(7).objective.gate_loss_weight == 0.5  # gate trains again after its warm-up
    assert schedule.at(10).objective.estep == "tempered"
    assert schedule.at(10).temperature == pytest.approx(2.0)
    assert schedule.at(60).temperature == pytest.approx(1.25)
    assert schedule.at(110).temperature == pytest.approx(0.5)
    # one expert: nothing to warm up, K = 1 stays plain DPO
    single = ObjectiveSchedule(
        base, num_experts=1, total_steps=10, estep_warmup_steps=10, gate_warmup_steps=10
    )
    assert single.at(0).objective == base


def test_gumbel_warmup_samples_one_hot():
    schedule = ObjectiveSchedule(ObjectiveConfig(), num_experts=3, total_steps=10, estep_warmup_steps=2,
                                 estep_warmup_mode="gumbel")  # fmt: skip
    assert schedule.at(0).objective.estep == "gumbel"
    assert schedule.at(0).objective.straight_through


def make_trainer(tmp_path, task, **options):
    args = MixDPOConfig(output_dir=str(tmp_path), model="random:llama-tiny", disable_tqdm=True, **options)
    policy = MixturePolicy.create(args.policy_config())
    dataset, _ = build_preference_dataset(task["train"], policy.tokenizer, args.tokenization_settings())
    return MixDPOTrainer(policy, args, train_dataset=dataset), policy


def test_gate_has_its_own_learning_rate(tmp_path, small_task):
    trainer, policy = make_trainer(tmp_path, small_task, learning_rate=1e-4, gate_learning_rate=0.05)
    optimizer = trainer.create_optimizer()
    gate_ids = {id(p) for p in policy.gate.parameters()}
    for group in optimizer.param_groups:
        ids = {id(p) for p in group["params"]}
        if ids & gate_ids:
            assert ids <= gate_ids
            assert group["lr"] == 0.05
        else:
            assert group["lr"] == 1e-4
    trained = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert trained == {id(p) for p in policy.parameters() if p.requires_grad}


def test_closed_form_gate_follows_the_responsibilities(tmp_path, small_task):
    trainer, policy = make_trainer(
        tmp_path, small_task, global_gate_mode="closed_form", max_steps=4, per_device_train_batch_size=4,
        learning_rate=3e-3,
    )  # fmt: skip
    assert list(policy.gate.parameters()) == []
    before = policy.gate.weights.clone()
    trainer.train()
    after = policy.gate.weights
    assert not torch.equal(before, after)
    assert after.sum().item() == pytest.approx(1.0)


def test_marginal_objective_trains_with_the_default_warmup(tmp_path, small_task):
    # the E-step warm-up does not apply to the marginal objective (no E-step); it used to fail to build
    trainer, _ = make_trainer(
        tmp_path, small_task, objective="marginal", max_steps=2, per_device_train_batch_size=4
    )
    assert trainer.args.estep_warmup_steps > 0
    trainer.train()
    assert trainer.schedule().at(0).objective.objective == "marginal"


def test_metrics_jsonl_has_trl_and_em_names(tmp_path, small_task):
    trainer, _ = make_trainer(
        tmp_path, small_task, max_steps=4, logging_steps=2, per_device_train_batch_size=4
    )
    trainer.train()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    logged = records[0]
    for name in ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
                 "logps/chosen", "logps/rejected", "em/elbo", "em/expert_fit", "em/gate_fit", "em/entropy",
                 "em/usage_0", "em/usage_1", "gate/weight_0", "rewards/expert_1/accuracies"):  # fmt: skip
        assert name in logged, name
    assert [r["step"] for r in records if "loss" in r] == [2, 4]


def test_computing_references_leaves_the_rng_as_loading_them_does(tmp_path, small_task):
    # A cache miss (computed) and a hit (loaded) must leave the same global RNG state, or two runs of one
    # config would draw different Gumbel noise / user dropout depending on the cache.
    trainer, _ = make_trainer(tmp_path, small_task)
    dataset = trainer.train_dataset
    torch.manual_seed(0)
    state = torch.random.get_rng_state()
    trainer.reference_table(dataset)  # computed
    assert torch.equal(torch.random.get_rng_state(), state)


@pytest.mark.parametrize(("fsdp", "zero_stage"), [(True, None), (False, 2), (False, 3)])
def test_sequential_experts_is_refused_under_fsdp_and_deepspeed(fsdp, zero_stage):
    from mixdpo.errors import ConfigError
    from mixdpo.trainer.distributed import check_sequential_supported

    with pytest.raises(ConfigError, match=r"sequential_experts.*not supported under"):
        check_sequential_supported(True, fsdp=fsdp, zero_stage=zero_stage)
    check_sequential_supported(False, fsdp=fsdp, zero_stage=zero_stage)
    check_sequential_supported(True, fsdp=False, zero_stage=None)  # one process or DDP
