"""Run a mixture policy over a preference dataset once, without gradients, and keep what the metrics need.

For every pair i and expert k (DESIGN.md section 2):

    r_k(x_i, y_i+/-) = beta (log pi_k(y+/- | x_i) - log pi_ref_k(y+/- | x_i))    implicit rewards [N, K]
    w_ik             = policy.routing_weights(x_i, u_i)                          inference routing [N, K]

User ids are mapped with ``policy.user_ids`` (the policy's own table: users it has not seen get the gate's
fallback row), so the evaluation data needs no vocabulary of its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mixdpo.batch import PROMPT_FEATURES, USER_IDS
from mixdpo.data import PreferenceCollator
from mixdpo.objective import implicit_rewards
from mixdpo.policy import MixturePolicy
from mixdpo.reference import ReferenceTable, attach_reference


@dataclass(frozen=True)
class PairScores:
    """Per-pair tensors of one policy on one dataset (CPU; rewards float32, log-weights float64).

    Attributes:
        chosen_rewards, rejected_rewards: [N, K] implicit rewards r_k(x_i, y_i+), r_k(x_i, y_i-).
        log_weights: [N, K] log w_ik of the inference-time routing (top-k and gate temperature applied).
        groups: N hidden group labels (None for a pair without one), or None when no pair has one.
        users: N user ids, likewise.
    """

    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor
    log_weights: torch.Tensor
    groups: list[str | None] | None
    users: list[str | None] | None

    @property
    def margins(self) -> torch.Tensor:
        """[N, K] D_ik = r_k(x_i, y_i+) - r_k(x_i, y_i-)."""
        return self.chosen_rewards - self.rejected_rewards


def _labels(values: list[str | None]) -> list[str | None] | None:
    return values if any(v is not None for v in values) else None


def _beta(policy: MixturePolicy) -> float:
    """The policy's DPO beta (``policy_config``; ``config`` in checkouts from before the rename)."""
    config: Any = getattr(policy, "policy_config", None) or getattr(policy, "config", None)
    return float(config.beta)


@contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """Eval mode inside; afterwards every submodule gets back its own mode (a plain ``train()`` would also
    switch frozen references, which backends keep in eval mode, to training mode)."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {name: t.to(device) for name, t in batch.items()}


@torch.no_grad()
def score_pairs(
    policy: MixturePolicy,
    dataset: Sequence[Mapping[str, Any]],
    *,
    batch_size: int = 16,
    reference_table: ReferenceTable | None = None,
) -> PairScores:
    """Implicit rewards and routing weights of every pair of ``dataset``, in dataset order.

    Args:
        policy: the mixture to score; put in eval mode for the pass, its mode restored afterwards.
        dataset: a :class:`~mixdpo.data.PreferenceDataset` (or any sequence of its pair dicts with
            ``prompt_ids``, ``chosen_ids``, ``rejected_ids`` and optional ``user_id``, ``group``,
            ``user_features``). Pair i is looked up in ``reference_table`` as row i.
        batch_size: pairs per forward pass.
        reference_table: precomputed reference log-probs of this dataset (one row per pair); attached
            to each batch instead of running the reference model.

    Returns:
        :class:`PairScores`.
    """
    n = len(dataset)
    if n == 0:
        raise ValueError("the evaluation dataset is empty")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if reference_table is not None and len(reference_table) != n:
        raise ValueError(
            f"the reference table has {len(reference_table)} rows but the dataset {n} pairs; "
            "compute the table on this dataset"
        )
    collate = PreferenceCollator.from_tokenizer(policy.tokenizer)
    device = next(policy.parameters()).device
    beta = _beta(policy)
    chosen, rejected, log_w = [], [], []
    groups: list[str | None] = []
    users: list[str | None] = []
    with _eval_mode(policy):
        for start in range(0, n, batch_size):
            pairs = [{**dataset[i], "example_index": i} for i in range(start, min(start + batch_size, n))]
            pair_users = [None if p.get("user_id") is None else str(p["user_id"]) for p in pairs]
            groups += [None if p.get("group") is None else str(p["group"]) for p in pairs]
            users += pair_users
            batch = collate(pairs)
            batch[USER_IDS] = policy.user_ids(pair_users)
            if reference_table is not None:
                batch = attach_reference(batch, reference_table)
            batch = _to_device(batch, device)
            inputs = policy.gate_inputs(batch)
            if inputs.prompt_features is not None:  # computed once, reused by the forward's gate
                batch[PROMPT_FEATURES] = inputs.prompt_features
            weights = policy.routing_weights(inputs)
            out = policy(batch)
            chosen.append(implicit_rewards(out.chosen_logps, out.ref_chosen_logps, beta).float().cpu())
            rejected.append(implicit_rewards(out.rejected_logps, out.ref_rejected_logps, beta).float().cpu())
            log_w.append(weights.double().log().cpu())
    return PairScores(
        chosen_rewards=torch.cat(chosen),
        rejected_rewards=torch.cat(rejected),
        log_weights=torch.cat(log_w),
        groups=_labels(groups),
        users=_labels(users),
    )
