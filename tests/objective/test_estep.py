"""Responsibilities: normalisation, invariances, the identical-expert fixed point and each E-step mode."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mixdpo.objective import (
    anneal_temperature,
    expert_margins,
    gate_log_weights,
    preference_loglik,
    responsibilities,
)
from strategies import bk_tensors


def hand_posterior(w: list[float], ll: list[float]) -> list[float]:
    joint = [wk * math.exp(lk) for wk, lk in zip(w, ll, strict=False)]
    return [j / sum(joint) for j in joint]


def test_soft_posterior_matches_bayes_rule_by_hand():
    w = [0.2, 0.5, 0.3]
    ll = [-0.1, -2.0, -0.7]
    q = responsibilities(torch.log(torch.tensor([w])), torch.tensor([ll]))
    assert q[0].tolist() == pytest.approx(hand_posterior(w, ll), rel=1e-6)


@settings(max_examples=60, deadline=None)
@given(bk_tensors(n=5), st.sampled_from(["soft", "hard", "tempered", "gumbel"]))
def test_rows_sum_to_one_and_carry_no_gradient(tensors, mode):
    pc, pr, rc, rr, logits = tensors
    pc.requires_grad_(True)
    logits.requires_grad_(True)
    ll = preference_loglik(expert_margins(pc, pr, rc, rr, 0.5), 0.5)
    q = responsibilities(gate_log_weights(logits), ll, mode=mode, temperature=0.7)
    assert not q.requires_grad
    assert q.grad_fn is None
    assert torch.all(q >= 0)
    torch.testing.assert_close(q.sum(-1), torch.ones(q.shape[0], dtype=q.dtype))


@settings(max_examples=60, deadline=None)
@given(bk_tensors(n=5, min_k=2), st.lists(st.floats(-100, 100), min_size=5, max_size=5))
def test_per_expert_constant_on_log_ratios_changes_nothing(tensors, consts):
    pc, pr, rc, rr, logits = tensors
    k = pc.shape[1]
    c = torch.tensor((consts * 2)[:k], dtype=torch.float64)
    prompt_c = torch.linspace(-3, 3, pc.shape[0], dtype=torch.float64)[:, None]
    log_w = gate_log_weights(logits)
    d0 = expert_margins(pc, pr, rc, rr, 0.3)
    # s_k(x, y) + c_k + c(x) for both completions: a per-expert and a per-prompt constant.
    d1 = expert_margins(pc + c + prompt_c, pr + c + prompt_c, rc, rr, 0.3)
    torch.testing.assert_close(d0, d1, rtol=1e-9, atol=1e-9)
    q0 = responsibilities(log_w, preference_loglik(d0, 0.3))
    q1 = responsibilities(log_w, preference_loglik(d1, 0.3))
    torch.testing.assert_close(q0, q1, rtol=1e-7, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(bk_tensors(n=5, min_k=2))
def test_identical_experts_give_q_equal_to_w(tensors):
    pc, pr, rc, rr, logits = tensors
    k = pc.shape[1]
    # Every expert has expert 0's log-probs: identical margins, so the posterior is the prior.
    same = [t[:, :1].expand(-1, k) for t in (pc, pr, rc, rr)]
    log_w = gate_log_weights(logits)
    q = responsibilities(log_w, preference_loglik(expert_margins(*same, 0.2), 0.2))
    torch.testing.assert_close(q, log_w.exp(), rtol=1e-9, atol=1e-12)


def test_hard_is_one_hot_argmax_with_lowest_index_on_ties():
    log_w = torch.log(torch.tensor([[0.5, 0.5], [0.9, 0.1], [0.5, 0.5]]))
    ll = torch.tensor([[-3.0, -1.0], [-1.0, -1.5], [-1.0, -1.0]])
    q = responsibilities(log_w, ll, mode="hard")
    assert q.tolist() == [[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]]


def test_tempered_interpolates_between_soft_uniform_and_hard():
    log_w = torch.log(torch.tensor([[0.3, 0.7]]))
    ll = torch.tensor([[-0.2, -1.5]])
    soft = responsibilities(log_w, ll, "soft")
    torch.testing.assert_close(responsibilities(log_w, ll, "tempered", temperature=1.0), soft)
    # q proportional to (w exp(l))^(1/T), by hand
    t = 2.5
    a = [(0.3 * math.exp(-0.2)) ** (1 / t), (0.7 * math.exp(-1.5)) ** (1 / t)]
    got = responsibilities(log_w, ll, "tempered", temperature=t)[0].tolist()
    assert got == pytest.approx([a[0] / sum(a), a[1] / sum(a)], rel=1e-6)
    cold = responsibilities(log_w, ll, "tempered", temperature=1e-3)
    assert cold[0].tolist() == pytest.approx(responsibilities(log_w, ll, "hard")[0].tolist(), abs=1e-6)
    hot = responsibilities(log_w, ll, "tempered", temperature=1e4)
    assert hot.tolist()[0] == pytest.approx([0.5, 0.5], abs=1e-3)


def test_straight_through_gumbel_samples_the_posterior():
    # The Gumbel-max one-hot draw is an exact sample from q*: empirical frequencies match it.
    log_w = torch.log(torch.tensor([[0.2, 0.3, 0.5]])).expand(20000, -1)
    ll = torch.tensor([[-1.0, -0.5, -2.0]]).expand(20000, -1)
    gen = torch.Generator().manual_seed(0)
    q = responsibilities(log_w, ll, "gumbel", temperature=0.5, straight_through=True, generator=gen)
    assert set(q.unique().tolist()) == {0.0, 1.0}
    want = hand_posterior([0.2, 0.3, 0.5], [-1.0, -0.5, -2.0])
    freq = q.mean(0).tolist()
    # 20000 draws: standard error <= 0.0036, so 0.015 is > 4 sigma.
    assert freq == pytest.approx(want, abs=0.015)


def test_relaxed_gumbel_is_seeded_and_sharper_at_low_temperature():
    log_w = torch.log(torch.full((500, 3), 1 / 3))
    ll = torch.zeros(500, 3)
    q1 = responsibilities(log_w, ll, "gumbel", 1.0, generator=torch.Generator().manual_seed(3))
    q2 = responsibilities(log_w, ll, "gumbel", 1.0, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(q1, q2)
    cold = responsibilities(log_w, ll, "gumbel", 0.05, generator=torch.Generator().manual_seed(3))
    assert cold.max(-1).values.mean() > q1.max(-1).values.mean() > 1 / 3


def test_invalid_mode_and_temperature():
    with pytest.raises(ValueError, match="unknown E-step mode"):
        responsibilities(torch.zeros(1, 2), torch.zeros(1, 2), mode="mean-field")
    with pytest.raises(ValueError, match="> 0"):
        responsibilities(torch.zeros(1, 2), torch.zeros(1, 2), mode="gumbel", temperature=0.0)


def test_anneal_temperature_schedules():
    assert anneal_temperature(0, 100, 2.0, 0.5, "linear") == pytest.approx(2.0)
    assert anneal_temperature(50, 100, 2.0, 0.5, "linear") == pytest.approx(1.25)
    assert anneal_temperature(50, 100, 2.0, 0.5, "exponential") == pytest.approx(1.0)  # sqrt(2 * 0.5)
    assert anneal_temperature(50, 100, 2.0, 0.5, "cosine") == pytest.approx(1.25)
    assert anneal_temperature(100, 100, 2.0, 0.5, "cosine") == pytest.approx(0.5)
    assert anneal_temperature(500, 100, 2.0, 0.5, "exponential") == pytest.approx(0.5)
    assert anneal_temperature(70, 100, 2.0, 0.5, "constant") == 2.0
    assert anneal_temperature(3, 0, 2.0, 0.5, "linear") == 0.5
    with pytest.raises(ValueError, match="schedule"):
        anneal_temperature(0, 10, 1.0, 0.5, "step")
    with pytest.raises(ValueError, match="> 0"):
        anneal_temperature(0, 10, 1.0, 0.0)
