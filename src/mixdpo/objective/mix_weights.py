"""Mix-DPO's closed-form update of global mixture weights (stochastic EM, Robbins-Monro).

Full-batch EM sets w_k = mean_i q_ik. On minibatches the running estimate moves towards the batch
average with a decreasing step size rho_t:

    w <- (1 - rho_t) w + rho_t * (sum_i q_ik) / n

where the sum and the count n run over the whole global batch: in distributed training the caller
passes a ``reduce_sum`` that all-reduces (sums) a tensor across processes, so N processes with
B / N pairs each make exactly the update of one process with B pairs.

Robbins-Monro conditions (sum rho_t = inf, sum rho_t^2 < inf) hold for rho_t = (t + t0)^-kappa with
kappa in (0.5, 1].
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from mixdpo.objective._precision import upcast


def robbins_monro_step_size(step: int, kappa: float = 0.7, offset: float = 1.0) -> float:
    """rho_t = (step + offset)^(-kappa), in (0, 1].

    Args:
        step: 0-based update counter t.
        kappa: decay exponent in (0.5, 1].
        offset: t0 >= 1, delays the decay (larger = smaller early steps).
    """
    if not 0.5 < kappa <= 1.0:
        raise ValueError(f"kappa must be in (0.5, 1] for Robbins-Monro convergence, got {kappa}")
    if offset < 1.0:
        raise ValueError(f"offset must be >= 1 so that the step size stays <= 1, got {offset}")
    return float((step + offset) ** (-kappa))


@torch.no_grad()
def robbins_monro_update(
    weights: torch.Tensor,
    q: torch.Tensor,
    step_size: float,
    reduce_sum: Callable[[torch.Tensor], torch.Tensor] | None = None,
    min_weight: float = 0.0,
) -> torch.Tensor:
    """One stochastic-EM update of global weights w towards the batch's mean responsibility.

    Args:
        weights: [K] current mixture weights (on the simplex).
        q: [B, K] this process's responsibilities.
        step_size: rho in [0, 1].
        reduce_sum: sums a tensor across processes (e.g. an all-reduce); ``None`` for one process.
        min_weight: floor applied before renormalising, so that no expert's weight reaches exactly 0
            (0 disables it; must be < 1 / K).

    Returns:
        [K] updated weights summing to 1 (a new tensor; ``weights`` is not modified).
    """
    if not 0.0 <= step_size <= 1.0:
        raise ValueError(f"step_size must be in [0, 1], got {step_size}")
    k = weights.shape[-1]
    if not 0.0 <= min_weight < 1.0 / k:
        raise ValueError(f"min_weight must be in [0, 1/K) = [0, {1.0 / k:.4g}), got {min_weight}")
    q = upcast(q)
    stats = torch.cat([q.sum(dim=0), q.new_tensor([float(q.shape[0])])])
    if reduce_sum is not None:
        stats = reduce_sum(stats)
    resp_sum, count = stats[:k], stats[k]
    if count <= 0:
        return weights.clone()
    new = (1.0 - step_size) * upcast(weights) + step_size * resp_sum / count
    if min_weight > 0.0:
        new = new.clamp(min=min_weight)
    return (new / new.sum()).to(weights.dtype)
