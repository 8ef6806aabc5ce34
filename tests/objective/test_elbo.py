"""ELBO <= log p with equality at the exact posterior; the three terms add up to the ELBO."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings

from mixdpo.objective import elbo_terms, gate_log_weights, log_posterior, mbt_log_likelihood, responsibilities
from strategies import bk_tensors


def test_terms_by_hand():
    w, ll, q = [0.25, 0.75], [-0.5, -2.0], [0.6, 0.4]
    terms = elbo_terms(torch.tensor([q]), torch.log(torch.tensor([w])), torch.tensor([ll]))
    assert terms.expert_fit.item() == pytest.approx(0.6 * -0.5 + 0.4 * -2.0)
    assert terms.gate_fit.item() == pytest.approx(0.6 * math.log(0.25) + 0.4 * math.log(0.75))
    assert terms.entropy.item() == pytest.approx(-(0.6 * math.log(0.6) + 0.4 * math.log(0.4)))
    assert terms.elbo.item() == pytest.approx(
        terms.expert_fit.item() + terms.gate_fit.item() + terms.entropy.item()
    )


@settings(max_examples=80, deadline=None)
@given(bk_tensors(n=3, min_k=2))
def test_elbo_is_log_p_minus_kl_and_tight_at_the_posterior(tensors):
    logits, ll, q_logits = tensors
    ll = -ll.abs()  # log-likelihoods are <= 0
    log_w = gate_log_weights(logits)
    log_p = mbt_log_likelihood(log_w, ll)
    q = torch.softmax(q_logits, -1)
    terms = elbo_terms(q, log_w, ll)
    log_q_star = log_posterior(log_w, ll)
    kl = (torch.special.xlogy(q, q) - torch.where(q > 0, q * log_q_star, torch.zeros_like(q))).sum(-1)
    torch.testing.assert_close(terms.elbo, log_p - kl, rtol=1e-9, atol=1e-9)
    assert torch.all(terms.elbo <= log_p + 1e-9)
    exact = elbo_terms(responsibilities(log_w, ll), log_w, ll)
    torch.testing.assert_close(exact.elbo, log_p, rtol=1e-9, atol=1e-9)


def test_hard_responsibilities_and_zero_weights_stay_finite():
    q = torch.tensor([[1.0, 0.0]])
    log_w = torch.tensor([[0.0, float("-inf")]])  # expert 1 switched off by a sparse gate
    terms = elbo_terms(q, log_w, torch.tensor([[-1.0, -3.0]]))
    assert terms.entropy.item() == 0.0
    assert terms.gate_fit.item() == 0.0
    assert terms.elbo.item() == pytest.approx(-1.0)
