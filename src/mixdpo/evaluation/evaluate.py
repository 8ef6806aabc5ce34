"""``evaluate_policy``: held-out evaluation of a trained mixture, optionally next to a baseline.

    scores  = score_pairs(policy, dataset)          model part: rewards r_k and routing w, no gradient
    metrics = preference_metrics(scores...)         pure math: accuracies, log-likelihood, ARI/NMI, ...

The result is plain JSON (what ``eval.json`` holds); see :func:`mixdpo.evaluation.metrics.preference_metrics`
for every key and its formula.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mixdpo.evaluation.metrics import preference_metrics
from mixdpo.evaluation.predictions import pair_predictions, write_predictions
from mixdpo.evaluation.scoring import PairScores, score_pairs
from mixdpo.policy import MixturePolicy
from mixdpo.reference import ReferenceTable

BASELINE_KEYS = (
    "num_experts",
    "mixture_accuracy",
    "mixture_log_likelihood",
    "reward_accuracy",
    "per_group_accuracy",
)


def metrics_of(scores: PairScores) -> dict[str, Any]:
    """:func:`preference_metrics` of a :class:`PairScores`."""
    return preference_metrics(
        scores.chosen_rewards,
        scores.rejected_rewards,
        scores.log_weights,
        groups=scores.groups,
        users=scores.users,
    )


def _source_rows(dataset: Sequence[Mapping[str, Any]]) -> list[int | None] | None:
    """Each pair's row in its source file, when the dataset keeps provenance (a PreferenceDataset)."""
    source = getattr(dataset, "source", None)
    return [source(i)[1] for i in range(len(dataset))] if callable(source) else None


def evaluate_policy(
    policy: MixturePolicy,
    dataset: Sequence[Mapping[str, Any]],
    *,
    batch_size: int = 16,
    baseline: MixturePolicy | None = None,
    reference_table: ReferenceTable | None = None,
    baseline_reference_table: ReferenceTable | None = None,
    predictions: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate ``policy`` on held-out preference pairs (no gradient; modes restored afterwards).

    Args:
        policy: the trained mixture (K >= 1 experts, any gate).
        dataset: a :class:`~mixdpo.data.PreferenceDataset` (pairs with optional ``user_id`` / ``group``).
        batch_size: pairs per forward pass.
        baseline: another policy scored the same way, typically plain DPO (K = 1).
        reference_table: precomputed reference log-probs of ``dataset`` for ``policy`` (skips the
            reference forward passes).
        baseline_reference_table: the same for ``baseline`` (its reference may differ from the policy's).
        predictions: a file to write ``policy``'s per-pair predictions to (JSON Lines, one row per pair:
            :func:`~mixdpo.evaluation.predictions.pair_predictions`); None writes nothing.

    Returns:
        The keys of :func:`preference_metrics` (group keys None without groups, user keys None without
        users) plus ``baseline``: None, or {``num_experts``, ``mixture_accuracy``,
        ``mixture_log_likelihood``, ``reward_accuracy``, ``per_group_accuracy``} of the baseline.
    """
    scores = score_pairs(policy, dataset, batch_size=batch_size, reference_table=reference_table)
    result = metrics_of(scores)
    if predictions is not None:
        write_predictions(predictions, pair_predictions(scores, _source_rows(dataset)))
    result["baseline"] = None
    if baseline is not None:
        base = metrics_of(
            score_pairs(baseline, dataset, batch_size=batch_size, reference_table=baseline_reference_table)
        )
        result["baseline"] = {key: base[key] for key in BASELINE_KEYS}
    return result
