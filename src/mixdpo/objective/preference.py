"""Per-expert preference log-likelihoods l_ik for each supported loss variant.

The Mixture-of-Bradley-Terry model needs, for every pair i and expert k, the log-likelihood that
expert k assigns to "y_i+ is preferred to y_i-". For DPO's sigmoid loss this is log sigmoid(D_ik).
The other variants are not likelihoods; as in the Mix-DPO paper we use minus their per-pair loss as a
pseudo log-likelihood, so the E-step weights experts by exp(-loss) (a Gibbs posterior).

With D = beta * h, h = (s+ - s-) the unscaled log-ratio difference, and epsilon = label_smoothing:

- ``sigmoid`` (DPO; conservative DPO when epsilon > 0):
      l = (1 - epsilon) * log sigmoid(D) + epsilon * log sigmoid(-D)
- ``robust`` (robust DPO, Chowdhury et al. 2024; unbiased under label-flip rate epsilon < 1/2):
      l = ((1 - epsilon) * log sigmoid(D) - epsilon * log sigmoid(-D)) / (1 - 2 epsilon)
- ``ipo`` (Azar et al. 2023):       l = -(h - 1 / (2 beta))^2
- ``hinge`` (SLiC, Zhao et al. 2023): l = -max(0, 1 - D)

With K = 1 ``sigmoid`` (epsilon = 0), ``robust`` and ``hinge`` are exactly the per-pair losses of TRL's
``DPOTrainer`` (``loss_type`` of the same names); ``sigmoid`` with epsilon > 0 is conservative DPO
(Mitchell 2023; TRL's ``label_smoothing`` before 1.0). TRL's ``ipo`` feeds token-averaged log-probs into
the same formula; averaging belongs to how log-probs are computed, not to this function.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from mixdpo.objective._precision import upcast

LossType = Literal["sigmoid", "robust", "ipo", "hinge"]
LOSS_TYPES: tuple[str, ...] = ("sigmoid", "robust", "ipo", "hinge")


def preference_loglik(
    margins: torch.Tensor,
    beta: float,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """l_ik: expert k's (pseudo) log-likelihood of pair i's observed preference.

    Args:
        margins: [B, K] expert margins D_ik = beta * (s_k(x_i, y_i+) - s_k(x_i, y_i-)).
        beta: the beta used to form the margins (IPO needs h = D / beta).
        loss_type: one of ``sigmoid``, ``robust``, ``ipo``, ``hinge`` (see module docstring).
        label_smoothing: epsilon in [0, 0.5), the assumed rate of flipped labels (``sigmoid``, ``robust``).

    Returns:
        [B, K] l_ik <= 0 for ``sigmoid``, ``ipo`` and ``hinge``; ``robust`` can exceed 0 (it is an unbiased
        loss estimate, not a likelihood).
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    d = upcast(margins)
    if loss_type == "sigmoid":
        if label_smoothing == 0.0:
            return F.logsigmoid(d)
        return (1.0 - label_smoothing) * F.logsigmoid(d) + label_smoothing * F.logsigmoid(-d)
    if loss_type == "robust":
        eps = label_smoothing
        return ((1.0 - eps) * F.logsigmoid(d) - eps * F.logsigmoid(-d)) / (1.0 - 2.0 * eps)
    if loss_type == "ipo":
        return -((d / beta - 1.0 / (2.0 * beta)) ** 2)
    if loss_type == "hinge":
        return -torch.relu(1.0 - d)
    raise ValueError(f"unknown loss_type {loss_type!r}; choose one of {', '.join(LOSS_TYPES)}")
