"""The composed objective: config validation, K = 1 = DPO end to end, regularisers, logged metrics."""

from __future__ import annotations

import math

import pytest
import torch

from mixdpo.errors import ConfigError
from mixdpo.objective import (
    ObjectiveConfig,
    gate_entropy,
    load_balance_penalty,
    mix_dpo_objective,
    objective_metrics,
)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"beta": 0}, "beta"),
        ({"beta": -0.1}, "beta"),
        ({"loss_type": "dpo"}, "loss_type"),
        ({"objective": "vi"}, "objective"),
        ({"estep": "sample"}, "estep"),
        ({"label_smoothing": 0.6}, "label_smoothing"),
        ({"loss_type": "ipo", "label_smoothing": 0.1}, "label_smoothing"),
        ({"estep_temperature": 0}, "estep_temperature"),
        ({"gate_temperature": -1}, "gate_temperature"),
        ({"gate_loss_weight": -1}, "gate_loss_weight"),
        ({"load_balance_weight": -1}, "load_balance_weight"),
        ({"straight_through": True}, "straight_through"),
        ({"objective": "marginal", "estep": "hard"}, "estep"),
    ],
)
def test_config_errors_name_the_field_and_the_fix(kwargs, field):
    with pytest.raises(ConfigError) as info:
        ObjectiveConfig(**kwargs)
    assert info.value.field == field
    assert field in str(info.value)


def test_config_round_trips_as_dict():
    cfg = ObjectiveConfig(beta=0.2, estep="gumbel", straight_through=True)
    assert ObjectiveConfig(**cfg.to_dict()) == cfg
    assert "beta" in ObjectiveConfig.field_names()


def test_regularisers_by_hand():
    w = torch.tensor([[0.9, 0.1], [0.5, 0.5]])
    log_w = w.log()
    w_bar = [0.7, 0.3]
    assert load_balance_penalty(log_w).item() == pytest.approx(
        sum(x * math.log(2 * x) for x in w_bar), rel=1e-6
    )
    h = [-(0.9 * math.log(0.9) + 0.1 * math.log(0.1)), math.log(2)]
    assert gate_entropy(log_w).item() == pytest.approx(sum(h) / 2, rel=1e-6)
    assert load_balance_penalty(torch.log(torch.tensor([[0.5, 0.5]]))).item() == pytest.approx(0.0, abs=1e-7)


def test_load_balance_gradient_is_finite_when_the_gate_has_collapsed():
    """A collapsed gate's mean weight underflows to 0 in float32; the penalty (log K here) and its gradient
    must stay finite (x log x has gradient log x + 1 = -inf at 0, which stopped a SmolLM2 run)."""
    logits = torch.tensor([[0.0, -200.0], [0.0, -300.0]], requires_grad=True)
    log_w = torch.log_softmax(logits, dim=-1)
    assert log_w.exp()[:, 1].max().item() == 0.0  # underflowed
    penalty = load_balance_penalty(log_w)
    assert penalty.item() == pytest.approx(math.log(2), rel=1e-6)  # KL(one-hot || uniform) = log K
    penalty.backward()
    assert torch.isfinite(logits.grad).all()


def test_regulariser_enters_the_loss_with_its_weight():
    torch.manual_seed(1)
    args = [torch.randn(5, 3) for _ in range(4)] + [torch.randn(5, 3)]
    base = mix_dpo_objective(*args, ObjectiveConfig())
    reg = mix_dpo_objective(*args, ObjectiveConfig(load_balance_weight=2.0, gate_entropy_weight=-0.5))
    want = 2.0 * load_balance_penalty(base.log_weights) - 0.5 * gate_entropy(base.log_weights)
    assert base.loss.regulariser.item() == 0.0
    assert reg.loss.regulariser.item() == pytest.approx(want.item(), rel=1e-6)
    assert reg.loss.total.item() == pytest.approx(base.loss.total.item() + want.item(), rel=1e-6)


def test_gate_size_must_match_experts():
    with pytest.raises(ValueError, match="K = 2"):
        mix_dpo_objective(*(torch.zeros(3, 2) for _ in range(4)), torch.zeros(3), ObjectiveConfig())


def test_metrics_by_hand_for_two_experts():
    # One pair, beta = 1, shared reference 0, global weights [0.25, 0.75].
    pc = torch.tensor([[1.0, -1.0]])
    pr = torch.tensor([[0.0, 0.0]])
    zero = torch.zeros(1)
    out = mix_dpo_objective(
        pc, pr, zero, zero, torch.log(torch.tensor([0.25, 0.75])), ObjectiveConfig(beta=1.0)
    )
    m = {k: v.item() for k, v in objective_metrics(out).items()}
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    joint = [0.25 * sig(1.0), 0.75 * sig(-1.0)]
    q = [j / sum(joint) for j in joint]
    assert m["em/usage_0"] == pytest.approx(q[0], rel=1e-6)
    assert m["em/usage_1"] == pytest.approx(q[1], rel=1e-6)
    assert m["gate/weight_1"] == pytest.approx(0.75, rel=1e-6)
    assert m["em/log_likelihood"] == pytest.approx(math.log(sum(joint)), rel=1e-6)
    assert m["em/elbo"] == pytest.approx(math.log(sum(joint)), rel=1e-6)  # exact posterior: tight
    assert m["rewards/expert_0/margins"] == pytest.approx(1.0)
    assert m["rewards/expert_1/accuracies"] == 0.0
    assert m["rewards/chosen"] == pytest.approx(math.log(0.25 * math.e + 0.75 / math.e), rel=1e-6)
    assert m["rewards/rejected"] == pytest.approx(0.0, abs=1e-7)
    assert m["logps/chosen"] == pytest.approx(q[0] * 1.0 + q[1] * -1.0, rel=1e-6)
    assert m["em/mixture_accuracy"] == (1.0 if sum(joint) > 0.5 else 0.0)
    assert m["em/entropy"] == pytest.approx(-sum(x * math.log(x) for x in q), rel=1e-6)


def test_k1_metrics_use_trl_definitions():
    pc, pr = torch.tensor([[-3.0], [-2.0]]), torch.tensor([[-4.0], [-1.0]])
    rc, rr = torch.tensor([-3.5, -2.0]), torch.tensor([-3.5, -1.5])
    out = mix_dpo_objective(pc, pr, rc, rr, torch.zeros(1), ObjectiveConfig(beta=0.1))
    m = objective_metrics(out)
    chosen = 0.1 * (pc[:, 0] - rc)
    rejected = 0.1 * (pr[:, 0] - rr)
    assert m["rewards/chosen"].item() == pytest.approx(chosen.mean().item(), rel=1e-6)
    assert m["rewards/margins"].item() == pytest.approx((chosen - rejected).mean().item(), rel=1e-6)
    assert m["rewards/accuracies"].item() == (chosen > rejected).float().mean().item()
    assert m["logps/chosen"].item() == pytest.approx(pc.mean().item())
