"""Per-pair predictions of a mixture: what ``eval.json`` averages, one row per held-out pair.

For error analysis ("which pairs does the mixture get wrong, and which expert did the gate pick?") and
for paired tests between two models scored on the same pairs. In DESIGN.md section 2's notation:

    D_ik      = r_k(x_i, y_i+) - r_k(x_i, y_i-)        expert margins
    P_i       = sum_k w_ik sigmoid(D_ik)               the mixture's probability that y_i+ is preferred
    q_ik      = w_ik sigmoid(D_ik) / P_i               responsibilities (the soft E-step's posterior)
    correct_i = [P_i > 1/2]                            what ``mixture_accuracy`` averages
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mixdpo.evaluation.metrics import mixture_prefers_chosen
from mixdpo.evaluation.scoring import PairScores
from mixdpo.objective import mbt_log_likelihood, preference_loglik, responsibilities


def _floats(values: Any) -> list[float | None]:
    return [float(v) if math.isfinite(float(v)) else None for v in values]


def pair_predictions(scores: PairScores, rows: Sequence[int | None] | None = None) -> list[dict[str, Any]]:
    """One JSON-serialisable dict per pair of ``scores``, in dataset order.

    Args:
        scores: the policy's :class:`~mixdpo.evaluation.PairScores` on N pairs, K experts.
        rows: each pair's 1-based row in its source file (``PreferenceDataset.source``), or None.

    Returns:
        N dicts: ``pair`` (index i), ``row`` (source row or None), ``group``, ``user_id``, ``p_chosen``
        P_i, ``correct`` [P_i > 1/2], ``expert`` argmax_k w_ik (the expert the gate favours),
        ``margins`` [K] D_ik, ``weights`` [K] w_ik, ``responsibilities`` [K] q_ik.
    """
    margins = (scores.chosen_rewards - scores.rejected_rewards).double()
    log_w = scores.log_weights.double()
    n = margins.shape[0]
    if rows is not None and len(rows) != n:
        raise ValueError(f"got {len(rows)} source rows for {n} pairs")
    loglik = preference_loglik(margins, beta=1.0, loss_type="sigmoid")  # log sigmoid(D); beta unused
    p_chosen = mbt_log_likelihood(log_w, loglik).exp()
    q = responsibilities(log_w, loglik, mode="soft")
    w = log_w.exp()
    correct = mixture_prefers_chosen(margins, w)
    groups = scores.groups or [None] * n
    users = scores.users or [None] * n
    return [
        {
            "pair": i,
            "row": None if rows is None else rows[i],
            "group": groups[i],
            "user_id": users[i],
            "p_chosen": float(p_chosen[i]),
            "correct": bool(correct[i]),
            "expert": int(w[i].argmax()),
            "margins": _floats(margins[i]),
            "weights": _floats(w[i]),
            "responsibilities": _floats(q[i]),
        }
        for i in range(n)
    ]


def write_predictions(path: str | Path, predictions: Sequence[dict[str, Any]]) -> Path:
    """Write :func:`pair_predictions` rows as JSON Lines (one pair per line); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in predictions), encoding="utf-8")
    return path


def read_predictions(path: str | Path) -> list[dict[str, Any]]:
    """The rows :func:`write_predictions` wrote."""
    text = Path(path).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]
