"""Per-expert log-ratios, margins and implicit rewards (DESIGN.md section 2).

Notation: B is the batch (number of preference pairs), K the number of experts.

- log-ratio of expert k:   s_k(x, y) = log pi_k(y|x) - log pi_ref_k(y|x)
- expert margin:           D_ik = beta * (s_k(x_i, y_i+) - s_k(x_i, y_i-))
- implicit reward:         r_k(x, y) = beta * s_k(x, y)          (up to a per-prompt constant)
- mixture reward:          r(x, y) = logsumexp_k(log w_k(x) + r_k(x, y))

Reference log-probs may be per expert ([B, K], one pi_ref_k each, as in the paper) or shared by all
experts ([B] or [B, 1]); a shared reference is broadcast over K.
"""

from __future__ import annotations

import torch

from mixdpo.objective._precision import upcast


def _reference_as_bk(ref_logps: torch.Tensor, policy_logps: torch.Tensor, name: str) -> torch.Tensor:
    """Broadcast a reference of shape [B], [B, 1] or [B, K] to the policy's [B, K]."""
    if ref_logps.dim() == 1:
        ref_logps = ref_logps.unsqueeze(-1)
    if (
        ref_logps.dim() != 2
        or ref_logps.shape[0] != policy_logps.shape[0]
        or ref_logps.shape[1]
        not in (
            1,
            policy_logps.shape[1],
        )
    ):
        raise ValueError(
            f"{name} has shape {tuple(ref_logps.shape)}; expected [B], [B, 1] or [B, K] with "
            f"[B, K] = {tuple(policy_logps.shape)} from the policy log-probs"
        )
    return ref_logps.expand_as(policy_logps)


def _check_policy(policy_logps: torch.Tensor, name: str) -> None:
    if policy_logps.dim() != 2:
        raise ValueError(f"{name} must have shape [B, K] (batch, experts); got {tuple(policy_logps.shape)}")


def log_ratios(policy_logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """s_k(x, y) = log pi_k(y|x) - log pi_ref_k(y|x).

    Args:
        policy_logps: [B, K] sequence log-probs of the completions under each expert.
        ref_logps: [B, K] per-expert reference log-probs, or [B] / [B, 1] for one shared reference.

    Returns:
        [B, K] log-ratios, float32 or wider.
    """
    _check_policy(policy_logps, "policy_logps")
    policy_logps = upcast(policy_logps)
    return policy_logps - upcast(_reference_as_bk(ref_logps, policy_logps, "ref_logps"))


def expert_margins(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """D_ik = beta * (s_k(x_i, y_i+) - s_k(x_i, y_i-)).

    Args:
        policy_chosen_logps: [B, K] log pi_k(y_i+ | x_i).
        policy_rejected_logps: [B, K] log pi_k(y_i- | x_i).
        ref_chosen_logps: [B, K] (per-expert references) or [B] / [B, 1] (shared) log pi_ref(y_i+ | x_i).
        ref_rejected_logps: same shape rules, log pi_ref(y_i- | x_i).
        beta: inverse temperature of the implicit reward (> 0).

    Returns:
        [B, K] margins D.
    """
    if policy_chosen_logps.shape != policy_rejected_logps.shape:
        raise ValueError(
            f"policy_chosen_logps {tuple(policy_chosen_logps.shape)} and policy_rejected_logps "
            f"{tuple(policy_rejected_logps.shape)} must have the same shape [B, K]"
        )
    return beta * (
        log_ratios(policy_chosen_logps, ref_chosen_logps)
        - log_ratios(policy_rejected_logps, ref_rejected_logps)
    )


def implicit_rewards(policy_logps: torch.Tensor, ref_logps: torch.Tensor, beta: float) -> torch.Tensor:
    """r_k(x, y) = beta * s_k(x, y): the reward each expert implicitly optimises.

    Args:
        policy_logps: [B, K]; ref_logps: [B, K], [B] or [B, 1].

    Returns:
        [B, K] implicit rewards (defined up to a per-prompt constant).
    """
    return beta * log_ratios(policy_logps, ref_logps)


def mixture_reward(log_weights: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    """r(x, y) = logsumexp_k(log w_k(x) + r_k(x, y)).

    Args:
        log_weights: [B, K] gate log-weights log w_k(x) (rows log-normalised).
        rewards: [B, K] per-expert implicit rewards r_k(x, y).

    Returns:
        [B] mixture reward. With K = 1 it is r_1(x, y).
    """
    return torch.logsumexp(upcast(log_weights) + upcast(rewards), dim=-1)
