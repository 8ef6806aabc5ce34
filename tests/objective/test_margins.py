"""Margins, log-ratios and rewards against hand computation with plain Python floats."""

from __future__ import annotations

import math

import pytest
import torch

from mixdpo.objective import expert_margins, implicit_rewards, log_ratios, mixture_reward


def test_margin_matches_hand_computation_per_expert_reference():
    # expert 0: s+ = -10 - (-11) = 1, s- = -12 - (-11) = -1 -> D = 0.1 * 2 = 0.2
    # expert 1: s+ = -3 - (-5) = 2,   s- = -4 - (-2) = -2  -> D = 0.1 * 4 = 0.4
    pc = torch.tensor([[-10.0, -3.0]])
    pr = torch.tensor([[-12.0, -4.0]])
    rc = torch.tensor([[-11.0, -5.0]])
    rr = torch.tensor([[-11.0, -2.0]])
    d = expert_margins(pc, pr, rc, rr, beta=0.1)
    assert d.shape == (1, 2)
    assert d[0, 0].item() == pytest.approx(0.2, abs=1e-6)
    assert d[0, 1].item() == pytest.approx(0.4, abs=1e-6)


@pytest.mark.parametrize("ref_shape", ["b", "b1"])
def test_shared_reference_is_broadcast_over_experts(ref_shape):
    pc = torch.tensor([[-1.0, -2.0, -3.0], [-4.0, -5.0, -6.0]])
    pr = torch.tensor([[-2.0, -2.0, -2.0], [-1.0, -1.0, -1.0]])
    rc = torch.tensor([-1.5, -4.5])
    rr = torch.tensor([-2.5, -0.5])
    if ref_shape == "b1":
        rc, rr = rc[:, None], rr[:, None]
    d = expert_margins(pc, pr, rc, rr, beta=1.0)
    for i in range(2):
        for k in range(3):
            want = (pc[i, k] - rc.flatten()[i]) - (pr[i, k] - rr.flatten()[i])
            assert d[i, k].item() == pytest.approx(want.item())


def test_shape_errors_are_explicit():
    pc = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"\[B\], \[B, 1\] or \[B, K\]"):
        log_ratios(pc, torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"\[B, K\]"):
        log_ratios(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="same shape"):
        expert_margins(pc, torch.zeros(2, 2), torch.zeros(2), torch.zeros(2), 0.1)


def test_implicit_and_mixture_reward_hand_computation():
    r = implicit_rewards(torch.tensor([[-1.0, -3.0]]), torch.tensor([[-2.0, -2.0]]), beta=0.5)
    assert r.tolist() == [[0.5, -0.5]]
    w = [0.25, 0.75]
    log_w = torch.log(torch.tensor([w]))
    want = math.log(w[0] * math.exp(0.5) + w[1] * math.exp(-0.5))
    assert mixture_reward(log_w, r).item() == pytest.approx(want, rel=1e-6)
    # K = 1: the mixture reward is the expert's reward.
    assert mixture_reward(torch.zeros(1, 1), torch.tensor([[0.7]])).item() == pytest.approx(0.7)
