"""The E-step's prior ramp: q proportional to w^a exp(l), with a rising from 0 to 1 after the warm-up."""

from __future__ import annotations

import json
import math

import pytest
import torch

from mixdpo.data import build_preference_dataset
from mixdpo.errors import ConfigError
from mixdpo.objective import ObjectiveConfig, mix_dpo_objective, responsibilities
from mixdpo.policy import MixturePolicy
from mixdpo.trainer import MixDPOConfig, MixDPOTrainer, ObjectiveSchedule


def powered_posterior(w: list[float], ll: list[float], a: float) -> list[float]:
    joint = [wk**a * math.exp(lk) for wk, lk in zip(w, ll, strict=True)]
    return [j / sum(joint) for j in joint]


@pytest.mark.parametrize("a", [0.0, 0.3, 1.0])
def test_prior_weight_raises_the_gate_to_a_power(a):
    w, ll = [0.9, 0.05, 0.05], [-1.2, -0.3, -2.0]
    log_w, loglik = torch.log(torch.tensor([w], dtype=torch.float64)), torch.tensor([ll], dtype=torch.float64)
    q = responsibilities(log_w, loglik, prior_weight=a)
    assert q[0].tolist() == pytest.approx(powered_posterior(w, ll, a), rel=1e-9)


def test_prior_weight_zero_ignores_a_collapsed_gate():
    # a collapsed gate takes every pair for its expert with a = 1; with a = 0 the likelihoods decide
    log_w = torch.log(torch.tensor([[1 - 1e-6, 1e-6]] * 2, dtype=torch.float64))
    ll = torch.tensor([[-3.0, -0.1], [-0.1, -3.0]], dtype=torch.float64)
    assert responsibilities(log_w, ll, mode="hard").argmax(-1).tolist() == [0, 0]
    assert responsibilities(log_w, ll, mode="hard", prior_weight=0.0).argmax(-1).tolist() == [1, 0]


@pytest.mark.parametrize("a", [-0.1, 1.5])
def test_prior_weight_outside_zero_one_is_refused(a):
    with pytest.raises(ValueError, match="prior_weight"):
        responsibilities(torch.zeros(1, 2), torch.zeros(1, 2), prior_weight=a)
    with pytest.raises(ConfigError, match="estep_prior_weight"):
        ObjectiveConfig(estep_prior_weight=a)


def test_objective_passes_the_prior_weight_to_the_estep_only():
    torch.manual_seed(0)
    pc, pr, rc, rr = (torch.randn(6, 2, dtype=torch.float64) for _ in range(4))
    logits = torch.tensor([4.0, -4.0], dtype=torch.float64)
    full = mix_dpo_objective(pc, pr, rc, rr, logits, ObjectiveConfig(beta=0.5))
    flat = mix_dpo_objective(pc, pr, rc, rr, logits, ObjectiveConfig(beta=0.5, estep_prior_weight=0.0))
    torch.testing.assert_close(flat.q, torch.softmax(full.loglik, -1))  # likelihoods alone
    torch.testing.assert_close(full.q, torch.softmax(full.log_weights + full.loglik, -1))
    torch.testing.assert_close(flat.log_likelihood, full.log_likelihood)  # log p keeps the gate


def test_schedule_ramps_the_prior_after_the_estep_warmup():
    schedule = ObjectiveSchedule(
        ObjectiveConfig(), num_experts=2, total_steps=20, estep_warmup_steps=3, prior_ramp_steps=4
    )
    weights = [schedule.at(step).objective.estep_prior_weight for step in range(9)]
    assert weights == pytest.approx([0, 0, 0, 0.25, 0.5, 0.75, 1, 1, 1])
    assert "+prior-ramp" in schedule.at(5).phase
    assert "+prior-ramp" not in schedule.at(6).phase
    # N = 1: the gate is ignored through the warm-up only
    step = ObjectiveSchedule(ObjectiveConfig(), num_experts=2, total_steps=20, estep_warmup_steps=3,
                             prior_ramp_steps=1)  # fmt: skip
    assert [step.at(t).objective.estep_prior_weight for t in range(5)] == [0, 0, 0, 1, 1]
    assert schedule.at(0).objective.estep == "hard"  # the warm-up itself is unchanged
    off = ObjectiveSchedule(ObjectiveConfig(), num_experts=2, total_steps=20, estep_warmup_steps=3)
    assert all(off.at(step).objective.estep_prior_weight == 1.0 for step in range(9))
    # one expert, or the marginal objective (no E-step): nothing to ramp
    for schedule in (
        ObjectiveSchedule(ObjectiveConfig(), num_experts=1, total_steps=20, prior_ramp_steps=4),
        ObjectiveSchedule(ObjectiveConfig(objective="marginal"), num_experts=2, total_steps=20,
                          prior_ramp_steps=4),
    ):  # fmt: skip
        assert schedule.at(1).objective.estep_prior_weight == 1.0


def test_negative_ramp_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="estep_prior_ramp_steps"):
        MixDPOConfig(output_dir=str(tmp_path), estep_prior_ramp_steps=-2)


@pytest.mark.parametrize(
    ("gate", "explicit", "want"),
    [("prompt", None, 1), ("prompt+user", None, 1), ("user", None, 0), ("global", None, 0), ("prompt", 0, 0),
     ("user", 3, 3)],
)  # fmt: skip
def test_default_ramp_ignores_only_a_prompt_gate_during_the_warmup(tmp_path, gate, explicit, want):
    args = MixDPOConfig(output_dir=str(tmp_path), gate=gate, estep_prior_ramp_steps=explicit)
    assert args.resolved_estep_prior_ramp_steps() == want


def _trained_prompt_gate(tmp_path, task, **options) -> tuple[MixDPOTrainer, MixturePolicy]:
    """A tiny prompt-gate mixture trained with ``options``."""
    args = MixDPOConfig(output_dir=str(tmp_path), model="random:llama-tiny", disable_tqdm=True, gate="prompt",
                        per_device_train_batch_size=4, report_to=[], **options)  # fmt: skip
    policy = MixturePolicy.create(args.policy_config())
    dataset, _ = build_preference_dataset(task["train"], policy.tokenizer, args.tokenization_settings())
    trainer = MixDPOTrainer(policy, args, train_dataset=dataset)
    trainer.train()
    return trainer, policy


def test_a_prompt_gate_trained_during_the_warmup_does_not_bias_the_hard_assignments(tmp_path, small_task):
    # gate trained from step 1 of a 3-step hard warm-up, with a large learning rate: by step 2 its weights
    # are far from uniform, yet the warm-up's assignments must be the likelihoods' argmax alone
    trainer, policy = _trained_prompt_gate(
        tmp_path, small_task, estep_warmup_steps=3, gate_warmup_steps=1, gate_learning_rate=0.5, max_steps=3
    )
    assert trainer.schedule().at(3).objective.estep_prior_weight == 1.0
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.state.global_step = 2  # the warm-up's last step, with the gate trained for one step
    policy.train()
    with torch.no_grad():
        _, out = trainer.compute_loss(policy, batch, return_outputs=True)
        weights = torch.softmax(policy(batch).gate_logits, -1)
    assert not torch.allclose(weights, torch.full_like(weights, 0.5), atol=1e-3)  # the gate has moved
    # hard responsibilities at the best expert's margin (l is increasing in D), whatever the gate says
    assert torch.equal(out["q"].argmax(-1), out["margins"].argmax(-1))
    assert torch.equal(out["q"].sum(-1), torch.ones(len(out["q"]), dtype=out["q"].dtype))


def test_training_logs_the_ramped_prior_weight(tmp_path, small_task):
    _trained_prompt_gate(
        tmp_path, small_task, estep_warmup_steps=2, estep_prior_ramp_steps=2, max_steps=4, logging_steps=1
    )
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    # optimizer steps 0-3 (logged as 1-4): a = 0 through the 2-step warm-up, then 0.5, 1
    assert [r["em/estep_prior_weight"] for r in records if "loss" in r] == pytest.approx([0, 0, 0.5, 1])
