"""Each loss variant's l = -(per-pair loss), checked against its single-model formula in plain Python."""

from __future__ import annotations

import math

import pytest
import torch

from mixdpo.objective import ObjectiveConfig, mix_dpo_objective, preference_loglik


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


# (policy chosen, policy rejected, ref chosen, ref rejected) per pair; beta
PAIRS = [
    (-10.0, -12.0, -11.0, -11.0),
    (-5.0, -4.0, -6.0, -3.5),
    (-20.0, -21.0, -20.0, -21.0),
    (-1.0, -9.0, -2.0, -3.0),
]
BETA = 0.3


def hand_h(pc: float, pr: float, rc: float, rr: float) -> float:
    return (pc - rc) - (pr - rr)


def hand_loss(loss_type: str, h: float, beta: float, eps: float) -> float:
    d = beta * h
    if loss_type == "sigmoid":
        return -(1 - eps) * log_sigmoid(d) - eps * log_sigmoid(-d)
    if loss_type == "robust":
        return (-(1 - eps) * log_sigmoid(d) + eps * log_sigmoid(-d)) / (1 - 2 * eps)
    if loss_type == "ipo":
        return (h - 1 / (2 * beta)) ** 2
    if loss_type == "hinge":
        return max(0.0, 1 - d)
    raise AssertionError(loss_type)


CASES = [("sigmoid", 0.0), ("sigmoid", 0.1), ("robust", 0.0), ("robust", 0.2), ("ipo", 0.0), ("hinge", 0.0)]


@pytest.mark.parametrize(("loss_type", "eps"), CASES)
def test_k1_loss_equals_single_model_formula(loss_type, eps):
    cols = [torch.tensor([[p[j]] for p in PAIRS], dtype=torch.float64) for j in range(4)]
    config = ObjectiveConfig(beta=BETA, loss_type=loss_type, label_smoothing=eps)
    out = mix_dpo_objective(*cols, torch.zeros(1, dtype=torch.float64), config)
    per_pair = [hand_loss(loss_type, hand_h(*p), BETA, eps) for p in PAIRS]
    assert out.loss.total.item() == pytest.approx(sum(per_pair) / len(per_pair), rel=1e-12, abs=1e-12)
    assert out.q.tolist() == [[1.0]] * len(PAIRS)
    assert out.loss.gate.item() == 0.0


def test_dpo_sign_prefers_the_chosen_completion():
    # Raising the chosen completion's log-prob must lower the DPO loss.
    d = torch.tensor([[0.0], [1.0]])
    ll = preference_loglik(d, beta=0.1)
    assert ll[1, 0] > ll[0, 0]
    assert ll[0, 0].item() == pytest.approx(-math.log(2.0))


def test_known_value_matches_trl_formula():
    # TRL: loss = -logsigmoid(beta * ((pc - rc) - (pr - rr))); here (1 - (-1)) * 0.1 = 0.2.
    ll = preference_loglik(torch.tensor([[0.2]]), beta=0.1)
    assert -ll.item() == pytest.approx(math.log1p(math.exp(-0.2)), rel=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"beta": 0.0}, "beta"),
        ({"label_smoothing": 0.5}, "label_smoothing"),
        ({"loss_type": "nope"}, "loss_type"),
    ],
)
def test_invalid_arguments_raise(kwargs, match):
    args = {"margins": torch.zeros(1, 1), "beta": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        preference_loglik(**args)
