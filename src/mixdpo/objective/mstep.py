"""M-step losses and the gate regularisers.

With responsibilities q detached (see :mod:`mixdpo.objective.estep`), on a minibatch of B pairs:

    L_em = -mean_i sum_k q_ik l_ik                      (experts: responsibility-weighted DPO)
           - lambda_gate * mean_i sum_k q_ik log w_ik   (gate: soft-label cross-entropy)
           + R(w)

    L_marginal = -mean_i log p_i + R(w),   log p_i = logsumexp_k(log w_ik + l_ik)

    R(w) = lambda_lb * KL(w_bar || uniform) + lambda_ent * mean_i H(w_i),   w_bar = mean_i w_i

With the exact posterior q = q* and lambda_gate = 1, grad L_em = grad L_marginal (Fisher's identity:
grad log p_i = sum_k q*_ik grad(log w_ik + l_ik)). Both regularisers are off (0) by default.
``lambda_lb > 0`` pushes the average routing towards uniform use of the experts; ``lambda_ent > 0``
makes each pair's gate distribution sharper, ``lambda_ent < 0`` smoother.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mixdpo.objective._precision import upcast
from mixdpo.objective.mixture import mbt_log_likelihood


@dataclass(frozen=True)
class LossParts:
    """A scalar loss and the parts it is made of (all 0-dim tensors).

    ``total = expert + gate + regulariser`` for the EM loss. For the marginal loss, ``expert`` holds
    -mean log p (experts and gate are not separable there) and ``gate`` is 0.
    """

    total: torch.Tensor
    expert: torch.Tensor
    gate: torch.Tensor
    regulariser: torch.Tensor


def load_balance_penalty(log_weights: torch.Tensor) -> torch.Tensor:
    """KL(w_bar || uniform) = sum_k w_bar_k log(K w_bar_k), w_bar = mean_i w_i; 0 iff routing is balanced.

    Args:
        log_weights: [B, K] gate log-weights.

    Returns:
        0-dim tensor >= 0.
    """
    log_weights = upcast(log_weights)
    b, k = log_weights.shape
    # In log space: w_bar log w_bar has gradient log w_bar + 1, which is -inf where a collapsed gate's
    # mean weight underflows to 0 (it did, on SmolLM2); log w_bar from logsumexp stays finite.
    log_w_bar = torch.logsumexp(log_weights, dim=0) - math.log(b)
    return (log_w_bar.exp() * (log_w_bar + math.log(k))).sum().clamp(min=0.0)


def gate_entropy(log_weights: torch.Tensor) -> torch.Tensor:
    """mean_i H(w_i) = -mean_i sum_k w_ik log w_ik, the average per-pair gate entropy.

    Args:
        log_weights: [B, K] gate log-weights.

    Returns:
        0-dim tensor in [0, log K].
    """
    log_w = upcast(log_weights)
    return -(torch.where(log_w.isfinite(), log_w.exp() * log_w, torch.zeros_like(log_w))).sum(dim=-1).mean()


def regulariser(
    log_weights: torch.Tensor, load_balance_weight: float, gate_entropy_weight: float
) -> torch.Tensor:
    """R(w) = lambda_lb * KL(w_bar || uniform) + lambda_ent * mean_i H(w_i); exactly 0 when both are 0."""
    total = log_weights.new_zeros((), dtype=upcast(log_weights).dtype)
    if load_balance_weight != 0.0:
        total = total + load_balance_weight * load_balance_penalty(log_weights)
    if gate_entropy_weight != 0.0:
        total = total + gate_entropy_weight * gate_entropy(log_weights)
    return total


def em_loss(
    q: torch.Tensor,
    log_weights: torch.Tensor,
    loglik: torch.Tensor,
    gate_loss_weight: float = 1.0,
    load_balance_weight: float = 0.0,
    gate_entropy_weight: float = 0.0,
) -> LossParts:
    """L_em, the M-step loss for fixed responsibilities.

    Args:
        q: [B, K] responsibilities; must not require grad (the E-step's output).
        log_weights: [B, K] gate log-weights (gradient flows to the gate only through this).
        loglik: [B, K] expert log-likelihoods (gradient flows to the experts only through this).
        gate_loss_weight: lambda_gate >= 0, weight of the gate's soft cross-entropy.
        load_balance_weight, gate_entropy_weight: lambda_lb, lambda_ent of R(w).

    Returns:
        :class:`LossParts` with ``total = expert + gate + regulariser``.
    """
    if q.requires_grad:
        raise ValueError("responsibilities must be detached (the E-step has no gradient); pass q.detach()")
    q = upcast(q)
    expert = -(q * upcast(loglik)).sum(dim=-1).mean()
    log_w = upcast(log_weights)
    gate_ce = -torch.where(q > 0, q * log_w, torch.zeros_like(log_w)).sum(dim=-1).mean()
    gate = gate_loss_weight * gate_ce
    reg = regulariser(log_weights, load_balance_weight, gate_entropy_weight)
    return LossParts(total=expert + gate + reg, expert=expert, gate=gate, regulariser=reg)


def marginal_loss(
    log_weights: torch.Tensor,
    loglik: torch.Tensor,
    load_balance_weight: float = 0.0,
    gate_entropy_weight: float = 0.0,
) -> LossParts:
    """L_marginal = -mean_i log p_i + R(w): direct maximum likelihood of the MBT model.

    Args:
        log_weights: [B, K] gate log-weights; loglik: [B, K] expert log-likelihoods.

    Returns:
        :class:`LossParts`; ``expert`` holds -mean log p, ``gate`` is 0.
    """
    nll = -mbt_log_likelihood(log_weights, loglik).mean()
    reg = regulariser(log_weights, load_balance_weight, gate_entropy_weight)
    return LossParts(total=nll + reg, expert=nll, gate=torch.zeros_like(nll), regulariser=reg)
