"""The evidence lower bound of the MBT likelihood and its three terms.

    ELBO_i = sum_k q_ik (log w_ik + l_ik - log q_ik)
           = expert_fit_i + gate_fit_i + entropy_i
           = log p_i - KL(q_i || q*_i)          <= log p_i, with equality iff q_i = q*_i

    expert_fit_i = sum_k q_ik l_ik       (how well the responsible experts explain the pair)
    gate_fit_i   = sum_k q_ik log w_ik   (how well the gate predicts the responsibilities)
    entropy_i    = -sum_k q_ik log q_ik  (H(q_i): how undecided the assignment is)

Terms with q_ik = 0 contribute 0 (the limit of q log q and of q times a finite or -inf log-weight), so
hard and sparse responsibilities are handled exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mixdpo.objective._precision import upcast


@dataclass(frozen=True)
class ElboTerms:
    """Per-pair ELBO terms, each of shape [B]."""

    expert_fit: torch.Tensor
    gate_fit: torch.Tensor
    entropy: torch.Tensor

    @property
    def elbo(self) -> torch.Tensor:
        """[B] ELBO_i = expert_fit_i + gate_fit_i + entropy_i."""
        return self.expert_fit + self.gate_fit + self.entropy


def _weighted_sum(q: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """sum_k q_k v_k with 0 * v := 0, so that -inf log-weights of unused experts give 0, not NaN."""
    return torch.where(q > 0, q * values, torch.zeros_like(values)).sum(dim=-1)


def elbo_terms(q: torch.Tensor, log_weights: torch.Tensor, loglik: torch.Tensor) -> ElboTerms:
    """Split the ELBO of responsibilities ``q`` into expert fit, gate fit and entropy.

    Args:
        q: [B, K] responsibilities (rows sum to 1).
        log_weights: [B, K] gate log-weights log w_ik.
        loglik: [B, K] per-expert preference log-likelihoods l_ik.

    Returns:
        :class:`ElboTerms` of [B] tensors. Gradients flow into ``log_weights`` and ``loglik`` (and into
        ``q`` if it has any), so the terms can be optimised as well as logged.
    """
    q, log_weights, loglik = upcast(q), upcast(log_weights), upcast(loglik)
    return ElboTerms(
        expert_fit=_weighted_sum(q, loglik),
        gate_fit=_weighted_sum(q, log_weights),
        entropy=-torch.special.xlogy(q, q).sum(dim=-1),
    )
