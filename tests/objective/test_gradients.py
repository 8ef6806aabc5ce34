"""Gradient structure of the M-step: Fisher's identity, where the gate's gradient comes from, detaching."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mixdpo.objective import ObjectiveConfig, gate_log_weights, mix_dpo_objective
from strategies import bk_tensors


def grads(tensors, config, gate_global=False):
    pc, pr, rc, rr, logits = (t.clone() for t in tensors)
    if gate_global:
        logits = logits[0]
    pc.requires_grad_(True)
    pr.requires_grad_(True)
    logits.requires_grad_(True)
    out = mix_dpo_objective(pc, pr, rc, rr, logits, config)
    out.loss.total.backward()
    return out, pc.grad, pr.grad, logits.grad


@settings(max_examples=60, deadline=None)
@given(
    bk_tensors(n=5, min_k=2, scale=20.0),
    st.sampled_from(["sigmoid", "robust", "ipo", "hinge"]),
    st.floats(0.0, 2.0),
    st.floats(-1.0, 1.0),
    st.booleans(),
)
def test_fisher_identity_em_and_marginal_losses_have_equal_gradients(
    tensors, loss_type, lb, ent, gate_global
):
    smoothing = 0.1 if loss_type in ("sigmoid", "robust") else 0.0
    common = {
        "beta": 0.2,
        "loss_type": loss_type,
        "label_smoothing": smoothing,
        "load_balance_weight": lb,
        "gate_entropy_weight": ent,
    }
    em, *g_em = grads(tensors, ObjectiveConfig(objective="em", estep="soft", **common), gate_global)
    mg, *g_mg = grads(tensors, ObjectiveConfig(objective="marginal", **common), gate_global)
    for a, b in zip(g_em, g_mg, strict=False):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-10)
    # The losses differ (by the mean entropy of q); only their gradients agree.
    torch.testing.assert_close(em.loss.total - em.elbo.entropy.mean(), mg.loss.total, rtol=1e-9, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(bk_tensors(n=5, min_k=2), st.floats(0.0, 3.0), st.sampled_from(["soft", "hard", "tempered", "gumbel"]))
def test_gate_gradient_is_lambda_times_w_minus_q(tensors, lam, estep):
    config = ObjectiveConfig(gate_loss_weight=lam, estep=estep, estep_temperature=0.8)
    out, _, _, g_logits = grads(tensors, config)
    b = g_logits.shape[0]
    want = lam * (out.log_weights.detach().exp() - out.q) / b
    torch.testing.assert_close(g_logits, want, rtol=1e-7, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(bk_tensors(n=5, min_k=2))
def test_expert_gradient_does_not_depend_on_the_gate_weight(tensors):
    _, gc0, gr0, g0 = grads(tensors, ObjectiveConfig(gate_loss_weight=0.0))
    _, gc1, gr1, _ = grads(tensors, ObjectiveConfig(gate_loss_weight=5.0))
    torch.testing.assert_close(gc0, gc1)
    torch.testing.assert_close(gr0, gr1)
    # With lambda_gate = 0 and no regulariser the gate receives no gradient at all: q is detached.
    assert torch.count_nonzero(g0) == 0


def test_expert_gradient_is_responsibility_weighted_dpo_gradient():
    # d L / d pc_ik = -q_ik * beta * sigmoid(-D_ik) / B for the sigmoid loss, by hand.
    torch.manual_seed(0)
    pc, pr, rc, rr = (torch.randn(4, 3, dtype=torch.float64) for _ in range(4))
    logits = torch.randn(4, 3, dtype=torch.float64)
    cfg = ObjectiveConfig(beta=0.7)
    out, gc, gr, _ = grads([pc, pr, rc, rr, logits], cfg)
    d = 0.7 * ((pc - rc) - (pr - rr))
    want = -out.q * 0.7 * torch.sigmoid(-d) / 4
    torch.testing.assert_close(gc, want)
    torch.testing.assert_close(gr, -want)


def test_em_loss_refuses_responsibilities_with_gradient():
    from mixdpo.objective import em_loss

    q = torch.full((2, 2), 0.5, requires_grad=True)
    with pytest.raises(ValueError, match="detached"):
        em_loss(q, gate_log_weights(torch.zeros(2, 2)), torch.zeros(2, 2))
