"""E-step: responsibilities q_ik over experts for each pair, always detached from the graph.

    log q*_ik = log w_ik + l_ik - log p_i                      (exact posterior, ``soft``)

A prior weight a in [0, 1] replaces log w by a log w (q proportional to w^a exp(l)): a = 0 assigns each
pair by the experts' likelihoods alone, as under a uniform gate; a = 1 (the default) is the posterior.
The trainer can hold a at 0 through the warm-up and ramp it to 1 after (``estep_prior_ramp_steps``; by
default for gates that read the prompt), so that a gate still learning cannot starve an expert.

Variants (``mode``):

- ``soft``: q = q*, the exact posterior. Only with it does the M-step loss have the gradient of the
  marginal likelihood (Fisher's identity) and does full-batch EM never decrease log p.
- ``hard``: one-hot argmax_k q*_ik (classification EM); ties go to the lowest index.
- ``tempered``: q proportional to (w_ik exp(l_ik))^(1/T) = softmax((log w + l) / T) (deterministic
  annealing): T > 1 softens assignments early in training, T -> 0 approaches ``hard``, T = 1 is ``soft``.
- ``gumbel``: a Gumbel-softmax sample, q = softmax((log q* + g) / tau), g_ik ~ Gumbel(0, 1) i.i.d.
  With ``straight_through`` the one-hot argmax of the same perturbed logits is returned instead,
  which is an exact sample k ~ q*_i (the Gumbel-max trick). Because responsibilities are detached, the
  straight-through estimator's backward pass has nothing to flow into; what remains of it is the hard
  sample in the forward pass. Stochastic assignments break the symmetry of identical experts.

Temperatures follow a schedule (see :func:`anneal_temperature`) driven by the trainer's step.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from mixdpo.objective.mixture import log_posterior

EStepMode = Literal["soft", "hard", "tempered", "gumbel"]
ESTEP_MODES: tuple[str, ...] = ("soft", "hard", "tempered", "gumbel")
SCHEDULES: tuple[str, ...] = ("constant", "linear", "exponential", "cosine")


def _one_hot_argmax(scores: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.one_hot(scores.argmax(dim=-1), scores.shape[-1]).to(scores.dtype)


def gumbel_noise(
    shape: torch.Size, *, like: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """g ~ Gumbel(0, 1) of ``shape``, same dtype/device as ``like``; seeded through ``generator``."""
    tiny = torch.finfo(like.dtype).tiny
    u = torch.rand(shape, dtype=like.dtype, device=like.device, generator=generator)
    return -torch.log(-torch.log(u.clamp(min=tiny, max=1.0 - 1e-7)))


@torch.no_grad()
def responsibilities(
    log_weights: torch.Tensor,
    loglik: torch.Tensor,
    mode: str = "soft",
    temperature: float = 1.0,
    straight_through: bool = False,
    generator: torch.Generator | None = None,
    prior_weight: float = 1.0,
) -> torch.Tensor:
    """Detached responsibilities q_ik for the M-step.

    Args:
        log_weights: [B, K] gate log-weights log w_ik.
        loglik: [B, K] per-expert preference log-likelihoods l_ik.
        mode: ``soft``, ``hard``, ``tempered`` or ``gumbel`` (see module docstring).
        temperature: T for ``tempered``, tau for ``gumbel`` (> 0); ignored otherwise.
        straight_through: ``gumbel`` only: return the one-hot sample instead of the relaxed one.
        generator: seeds the Gumbel noise.
        prior_weight: a in [0, 1], the gate's weight in the posterior (log w -> a log w).

    Returns:
        [B, K] responsibilities, rows summing to 1, ``requires_grad=False``.
    """
    if mode not in ESTEP_MODES:
        raise ValueError(f"unknown E-step mode {mode!r}; choose one of {', '.join(ESTEP_MODES)}")
    if temperature <= 0 and mode in ("tempered", "gumbel"):
        raise ValueError(f"E-step temperature must be > 0, got {temperature}")
    if not 0.0 <= prior_weight <= 1.0:
        raise ValueError(f"prior_weight must be in [0, 1], got {prior_weight}")
    log_q = log_posterior(prior_weight * log_weights.detach(), loglik.detach())
    if mode == "soft":
        return log_q.exp()
    if mode == "hard":
        return _one_hot_argmax(log_q)
    if mode == "tempered":
        return torch.softmax(log_q / temperature, dim=-1)
    perturbed = log_q + gumbel_noise(log_q.shape, like=log_q, generator=generator)
    if straight_through:
        return _one_hot_argmax(perturbed)
    return torch.softmax(perturbed / temperature, dim=-1)


def anneal_temperature(
    step: int, total_steps: int, start: float, end: float, schedule: str = "exponential"
) -> float:
    """Temperature at ``step`` of a schedule that goes from ``start`` (step 0) to ``end`` (``total_steps``).

    Schedules: ``constant`` (always ``start``), ``linear``, ``exponential`` (geometric interpolation,
    the usual choice for Gumbel-softmax), ``cosine``. Steps past ``total_steps`` stay at ``end``.

    Returns:
        tau_t > 0.
    """
    if start <= 0 or end <= 0:
        raise ValueError(f"temperatures must be > 0, got start={start}, end={end}")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown temperature schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if schedule == "constant":
        return float(start)
    if total_steps <= 0:
        return float(end)
    frac = min(max(step / total_steps, 0.0), 1.0)
    if schedule == "linear":
        return float(start + (end - start) * frac)
    if schedule == "exponential":
        return float(start * (end / start) ** frac)
    return float(end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * frac)))
