"""Group recovery (ARI, NMI, group -> expert, routing and oracle accuracy) on tensors with known answers."""

from __future__ import annotations

import pytest
import torch

from mixdpo.evaluation import clustering_scores, group_to_expert, oracle_accuracy, routing_accuracy
from mixdpo.evaluation.assignment import group_rows

Q = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9]])
W = torch.tensor([[0.6, 0.4], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]])
D = torch.tensor([[1.0, -1.0], [-1.0, 1.0], [0.5, -2.0], [3.0, 2.0]])
GROUPS = ["a", "a", "b", "b"]


def test_perfect_recovery_scores_one_whatever_the_expert_names():
    assert clustering_scores(Q, GROUPS) == pytest.approx((1.0, 1.0))
    assert clustering_scores(Q.flip(-1), GROUPS) == pytest.approx((1.0, 1.0))
    assert group_to_expert(Q, group_rows(GROUPS)) == {"a": 0, "b": 1}
    assert group_to_expert(Q.flip(-1), group_rows(GROUPS)) == {"a": 1, "b": 0}


def test_crossed_assignment_has_negative_ari_and_zero_nmi():
    crossed = torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.9, 0.1], [0.1, 0.9]])  # clusters 0,1,0,1 vs a,a,b,b
    ari, nmi = clustering_scores(crossed, GROUPS)
    assert ari == pytest.approx(-0.5)
    assert nmi == pytest.approx(0.0, abs=1e-12)


def test_one_cluster_is_zero_and_one_group_is_undefined():
    assert clustering_scores(torch.ones(4, 1), GROUPS) == (0.0, 0.0)
    assert clustering_scores(Q, ["a"] * 4) == (None, None)


def test_routing_and_oracle_accuracy():
    rows = group_rows(GROUPS)
    mapping = group_to_expert(Q, rows)
    # Gate argmax: 0, 1, 1, 1 against group experts 0, 0, 1, 1.
    assert routing_accuracy(W, mapping, rows) == pytest.approx(0.75)
    # Group experts' margins: D[0,0] = 1, D[1,0] = -1, D[2,1] = -2, D[3,1] = 2.
    assert oracle_accuracy(D, mapping, rows) == pytest.approx(0.5)


def test_group_to_expert_uses_mean_responsibility_and_ties_go_low():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.5, 0.5]])
    rows = group_rows(["g", "g", "g", "h"])
    assert group_to_expert(q, rows) == {"g": 1, "h": 0}


def test_group_rows_skips_unlabelled_pairs_and_sorts_labels():
    rows = group_rows(["b", None, "a", "b"])
    assert list(rows) == ["a", "b"]
    assert rows["b"].tolist() == [0, 3]
