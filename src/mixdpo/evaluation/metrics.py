"""Held-out metrics of a mixture as a pure function of per-pair tensors (no models; DESIGN.md section 2).

For N pairs and K experts, from the implicit rewards r_k(x_i, y_i+/-) and the gate's log-weights log w_ik:

    D_ik   = r_k(x_i, y_i+) - r_k(x_i, y_i-)           = beta (s_k(y+) - s_k(y-)), the expert margin
    l_ik   = log sigmoid(D_ik)                          (sigmoid / Bradley-Terry log-likelihood)
    P_i    = sum_k w_ik sigmoid(D_ik)                   the MBT probability that y+ is preferred
    log P_i = logsumexp_k(log w_ik + l_ik)              (computed in log space: stable)
    q_ik   = w_ik exp(l_ik) / P_i                       E-step posterior (responsibilities, ``soft``)
    r(x, y) = logsumexp_k(log w_ik + r_k(x, y))         mixture reward

``mixture_accuracy`` = mean_i [P_i > 1/2]. The test uses the exact identity
P_i - 1/2 = 1/2 sum_k w_ik tanh(D_ik / 2), so its sign is right even for margins too small for
sigmoid(D) to differ from 1/2 in floating point; with K = 1 it is exactly mean_i [D_i > 0].
All comparisons are strict: a tie (P_i = 1/2, D_ik = 0, r+ = r-) counts as wrong.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from mixdpo.evaluation.assignment import (
    clustering_scores,
    group_rows,
    group_to_expert,
    mean_by_label,
    oracle_accuracy,
    routing_accuracy,
)
from mixdpo.objective import mbt_log_likelihood, mixture_reward, preference_loglik, responsibilities

GROUP_KEYS = (
    "per_group_accuracy",
    "per_group_pairs",
    "per_group_expert_accuracy",
    "ari",
    "nmi",
    "group_to_expert",
    "routing_accuracy",
    "oracle_accuracy",
    "responsibilities_by_group",
    "gate_weights_by_group",
)
USER_KEYS = ("per_user_accuracy", "gate_weights_by_user")


def _check(name: str, t: torch.Tensor, shape: torch.Size | None) -> torch.Tensor:
    if t.dim() != 2 or (shape is not None and t.shape != shape):
        want = f"[N, K] = {list(shape)}" if shape is not None else "[N, K]"
        raise ValueError(f"{name} has shape {list(t.shape)}; expected {want}")
    return t.detach().double().cpu()


def _labels(name: str, labels: Sequence[str | None] | None, n: int) -> list[str | None] | None:
    if labels is None:
        return None
    if len(labels) != n:
        raise ValueError(f"got {len(labels)} {name} for {n} pairs")
    return [None if x is None else str(x) for x in labels]


def _mean(mask: torch.Tensor) -> float:
    return float(mask.double().mean())


def mixture_prefers_chosen(margins: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """[N] bool: P_i > 1/2, tested as sum_k w_ik tanh(D_ik / 2) > 0 (exact, see the module docstring).

    Args:
        margins: [N, K] D_ik.
        weights: [N, K] w_ik (0 for experts that top-k routing drops).
    """
    return (weights * torch.tanh(margins / 2)).sum(dim=-1) > 0


def preference_metrics(
    chosen_rewards: torch.Tensor,
    rejected_rewards: torch.Tensor,
    log_weights: torch.Tensor,
    *,
    groups: Sequence[str | None] | None = None,
    users: Sequence[str | None] | None = None,
) -> dict[str, Any]:
    """Every evaluation metric of one mixture on N held-out pairs, as plain JSON-serialisable Python.

    Args:
        chosen_rewards: [N, K] r_k(x_i, y_i+) = beta s_k(x_i, y_i+).
        rejected_rewards: [N, K] r_k(x_i, y_i-).
        log_weights: [N, K] routing log-weights log w_ik (-inf for experts that top-k routing drops).
        groups: N hidden group labels (``None`` for pairs without one), or None when the data has none.
        users: N user ids (``None`` for pairs without one), or None.

    Returns:
        A dict with the keys below. Lists of K floats are indexed by expert; dicts by group / user label
        (sorted). Group keys (:data:`GROUP_KEYS`) are None when no pair has a group, user keys
        (:data:`USER_KEYS`) when no pair has a user; pairs without a label are left out of them.

        - ``num_pairs`` N, ``num_experts`` K.
        - ``mixture_accuracy``: mean_i [P_i > 1/2]; ``mixture_log_likelihood``: mean_i log P_i.
        - ``reward_accuracy``: mean_i [r(x_i, y_i+) > r(x_i, y_i-)].
        - ``per_expert_accuracy``: [K] mean_i [D_ik > 0].
        - ``expert_usage``: [K] mean_i q_ik; ``gate_weights``: [K] mean_i w_ik.
        - ``per_group_accuracy``: {g: mixture accuracy on g}; ``per_group_pairs``: {g: pairs of g} (how
          many pairs each group's accuracy rests on); ``per_group_expert_accuracy``: {g: [K]}.
        - ``ari``, ``nmi``, ``group_to_expert``, ``routing_accuracy``, ``oracle_accuracy``: see
          :mod:`mixdpo.evaluation.assignment` (ari / nmi are None with fewer than two groups).
        - ``responsibilities_by_group``: {g: [K] mean q}; ``gate_weights_by_group``: {g: [K] mean w}.
        - ``per_user_accuracy``: {u: mixture accuracy}; ``gate_weights_by_user``: {u: [K] mean w}.
    """
    chosen = _check("chosen_rewards", chosen_rewards, None)
    if chosen.shape[0] == 0:
        raise ValueError("no pairs to evaluate")
    rejected = _check("rejected_rewards", rejected_rewards, chosen.shape)
    log_w = _check("log_weights", log_weights, chosen.shape)
    n, k = chosen.shape
    group_labels, user_labels = _labels("groups", groups, n), _labels("users", users, n)

    margins = chosen - rejected  # D_ik
    loglik = preference_loglik(margins, beta=1.0, loss_type="sigmoid")  # l = log sigmoid(D); beta unused
    log_p = mbt_log_likelihood(log_w, loglik)  # [N]
    q = responsibilities(log_w, loglik, mode="soft")  # [N, K]
    w = log_w.exp()
    mixture_correct = mixture_prefers_chosen(margins, w)
    reward_correct = mixture_reward(log_w, chosen) > mixture_reward(log_w, rejected)
    expert_correct = margins > 0  # [N, K]

    out: dict[str, Any] = {
        "num_pairs": n,
        "num_experts": k,
        "mixture_accuracy": _mean(mixture_correct),
        "mixture_log_likelihood": float(log_p.mean()),
        "reward_accuracy": _mean(reward_correct),
        "per_expert_accuracy": [float(v) for v in expert_correct.double().mean(dim=0)],
        "expert_usage": [float(v) for v in q.mean(dim=0)],
        "gate_weights": [float(v) for v in w.mean(dim=0)],
    }
    out.update(dict.fromkeys(GROUP_KEYS))
    out.update(dict.fromkeys(USER_KEYS))

    g_rows = group_rows(group_labels) if group_labels is not None else {}
    if g_rows:
        labelled = torch.cat(list(g_rows.values()))
        mapping = group_to_expert(q, g_rows)
        labels = [g for g, idx in g_rows.items() for _ in range(len(idx))]  # the group of each labelled row
        ari, nmi = clustering_scores(q[labelled], labels)
        out.update(
            per_group_accuracy={g: _mean(mixture_correct[idx]) for g, idx in g_rows.items()},
            per_group_pairs={g: len(idx) for g, idx in g_rows.items()},
            per_group_expert_accuracy=mean_by_label(expert_correct.double(), g_rows),
            ari=ari,
            nmi=nmi,
            group_to_expert=mapping,
            routing_accuracy=routing_accuracy(w, mapping, g_rows),
            oracle_accuracy=oracle_accuracy(margins, mapping, g_rows),
            responsibilities_by_group=mean_by_label(q, g_rows),
            gate_weights_by_group=mean_by_label(w, g_rows),
        )
    u_rows = group_rows(user_labels) if user_labels is not None else {}
    if u_rows:
        out.update(
            per_user_accuracy={u: _mean(mixture_correct[idx]) for u, idx in u_rows.items()},
            gate_weights_by_user=mean_by_label(w, u_rows),
        )
    return _finite(out)


def _finite(value: Any) -> Any:
    """Replace non-finite floats (e.g. log P = -inf) by None so the result is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(v) for key, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
