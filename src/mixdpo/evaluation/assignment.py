"""How well the experts recovered the hidden groups g_i (DESIGN.md section 2; g is never used to train).

Given responsibilities q [N, K] (the E-step posterior on held-out pairs), gate weights w [N, K] and each
pair's group label:

- cluster of pair i: c_i = argmax_k q_ik (ties go to the lowest k).
- ``ari``, ``nmi``: adjusted Rand index and normalised mutual information between c and g (sklearn).
  Both are 1 when the clusters are the groups up to renaming and about 0 for an unrelated assignment;
  they do not care which expert a group gets. They are undefined (None) with fewer than two distinct
  groups (there is nothing to recover); with K = 1 (one cluster) and two or more groups both are 0.
- group -> expert: e(g) = argmax_k mean_{i in g} q_ik, the expert that explains the group's pairs best.
- ``routing_accuracy``: mean_i [argmax_k w_ik = e(g_i)]: does the gate, which never sees the preference
  label, send the pair to its group's expert?
- ``oracle_accuracy``: mean_i [D_{i, e(g_i)} > 0]: accuracy if every pair were scored by its group's
  expert alone, the upper bound of what routing can reach with these experts. e is chosen on the same
  pairs it is scored on, so this bound is slightly optimistic.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


def group_rows(labels: Sequence[str | None]) -> dict[str, torch.Tensor]:
    """{label: LongTensor of the row indices with that label}, labels sorted; ``None`` rows are left out."""
    rows: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        if label is not None:
            rows.setdefault(str(label), []).append(i)
    return {label: torch.tensor(rows[label], dtype=torch.long) for label in sorted(rows)}


def mean_by_label(values: torch.Tensor, rows: dict[str, torch.Tensor]) -> dict[str, list[float]]:
    """{label: mean of ``values`` [N, K] over the label's rows, as a list of K floats}."""
    return {label: [float(v) for v in values[idx].mean(dim=0)] for label, idx in rows.items()}


def clustering_scores(q: torch.Tensor, groups: Sequence[str]) -> tuple[float | None, float | None]:
    """(ARI, NMI) between argmax_k q_ik and the groups; (None, None) with fewer than two distinct groups.

    Args:
        q: [N, K] responsibilities.
        groups: N group labels (no ``None``).
    """
    if len(set(groups)) < 2:
        return None, None
    clusters = q.argmax(dim=-1).tolist()
    labels = [str(g) for g in groups]
    return float(adjusted_rand_score(labels, clusters)), float(normalized_mutual_info_score(labels, clusters))


def group_to_expert(q: torch.Tensor, rows: dict[str, torch.Tensor]) -> dict[str, int]:
    """e(g) = argmax_k mean_{i in g} q_ik for every group (ties go to the lowest k).

    Args:
        q: [N, K] responsibilities.
        rows: {group: row indices} from :func:`group_rows`.
    """
    return {label: int(q[idx].mean(dim=0).argmax()) for label, idx in rows.items()}


def _group_expert_per_row(mapping: dict[str, int], rows: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """(row indices, e(g_i) of each of those rows) over all labelled rows."""
    idx = torch.cat([rows[label] for label in mapping])
    experts = torch.cat([torch.full_like(rows[label], mapping[label]) for label in mapping])
    return idx, experts


def routing_accuracy(weights: torch.Tensor, mapping: dict[str, int], rows: dict[str, torch.Tensor]) -> float:
    """mean_i [argmax_k w_ik = e(g_i)] over the labelled rows.

    Args:
        weights: [N, K] gate weights w_ik (log-weights give the same argmax).
        mapping: e, from :func:`group_to_expert`.
        rows: {group: row indices}.
    """
    idx, experts = _group_expert_per_row(mapping, rows)
    return float((weights[idx].argmax(dim=-1) == experts).double().mean())


def oracle_accuracy(margins: torch.Tensor, mapping: dict[str, int], rows: dict[str, torch.Tensor]) -> float:
    """mean_i [D_{i, e(g_i)} > 0] over the labelled rows: each pair scored by its group's expert alone.

    Args:
        margins: [N, K] expert margins D_ik.
        mapping: e, from :func:`group_to_expert`.
        rows: {group: row indices}.
    """
    idx, experts = _group_expert_per_row(mapping, rows)
    chosen = margins[idx].gather(1, experts[:, None]).squeeze(1)
    return float((chosen > 0).double().mean())
