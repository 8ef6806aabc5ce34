"""Gate log-weights and the Mixture-of-Bradley-Terry (MBT) marginal likelihood.

- gate:        log w_ik = log_softmax(gate_logits(x_i, u_i) / T)_k    (Mix-DPO: one global logit vector)
- MBT:         log p_i  = logsumexp_k(log w_ik + l_ik)

Both are computed in log space so that margins of +-1e4 or near-zero weights stay finite.
"""

from __future__ import annotations

import torch

from mixdpo.objective._precision import upcast


def gate_log_weights(
    gate_logits: torch.Tensor, batch_size: int | None = None, temperature: float = 1.0
) -> torch.Tensor:
    """log w = log_softmax(gate_logits / temperature) over experts.

    Args:
        gate_logits: [B, K] per-example logits (MoE-DPO) or [K] one global vector (Mix-DPO).
        batch_size: B, required to broadcast a [K] vector to [B, K]; ignored for [B, K] input.
        temperature: > 0; above 1 flattens the gate, below 1 sharpens it.

    Returns:
        [B, K] log-weights whose rows logsumexp to 0.
    """
    if temperature <= 0:
        raise ValueError(f"gate temperature must be > 0, got {temperature}")
    logits = upcast(gate_logits)
    if logits.dim() == 1:
        if batch_size is None:
            raise ValueError("a global [K] gate vector needs batch_size to broadcast to [B, K]")
        logits = logits.unsqueeze(0).expand(batch_size, -1)
    elif logits.dim() != 2:
        raise ValueError(f"gate_logits must have shape [K] or [B, K], got {tuple(gate_logits.shape)}")
    return torch.log_softmax(logits / temperature, dim=-1)


def mbt_log_likelihood(log_weights: torch.Tensor, loglik: torch.Tensor) -> torch.Tensor:
    """log p_i = logsumexp_k(log w_ik + l_ik), the MBT marginal log-likelihood of each pair.

    Args:
        log_weights: [B, K] gate log-weights.
        loglik: [B, K] per-expert preference log-likelihoods l_ik.

    Returns:
        [B] marginal log-likelihoods. With K = 1 (log w = 0) this is l_i1.
    """
    if log_weights.shape != loglik.shape:
        raise ValueError(
            f"log_weights {tuple(log_weights.shape)} and loglik {tuple(loglik.shape)} must match"
        )
    return torch.logsumexp(upcast(log_weights) + upcast(loglik), dim=-1)


def log_posterior(log_weights: torch.Tensor, loglik: torch.Tensor) -> torch.Tensor:
    """log q*_ik = log w_ik + l_ik - log p_i: the exact posterior over experts (with gradient).

    Args:
        log_weights, loglik: [B, K].

    Returns:
        [B, K] log-posterior; rows logsumexp to 0. Use :func:`mixdpo.objective.responsibilities` for
        the detached E-step; this function keeps gradients for analysis and tests.
    """
    joint = upcast(log_weights) + upcast(loglik)
    return torch.log_softmax(joint, dim=-1)
