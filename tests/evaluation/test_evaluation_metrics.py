"""The pure metric core against an independent (plain Python ``math``) computation on hand-built pairs."""

from __future__ import annotations

import json
import math

import pytest
import torch

from mixdpo.evaluation import GROUP_KEYS, USER_KEYS, preference_metrics


def sigmoid(d: float) -> float:
    return 1.0 / (1.0 + math.exp(-d))


def reference_metrics(chosen, rejected, weights):
    """mixture accuracy, mean log P, reward accuracy, q, per-expert accuracy, computed pair by pair."""
    acc, loglik, reward_acc, qs = [], [], [], []
    for c, r, w in zip(chosen, rejected, weights, strict=True):
        d = [ck - rk for ck, rk in zip(c, r, strict=True)]
        p = sum(wk * sigmoid(dk) for wk, dk in zip(w, d, strict=True))
        acc.append(p > 0.5)
        loglik.append(math.log(p))
        reward_plus = math.log(sum(wk * math.exp(ck) for wk, ck in zip(w, c, strict=True)))
        reward_minus = math.log(sum(wk * math.exp(rk) for wk, rk in zip(w, r, strict=True)))
        reward_acc.append(reward_plus > reward_minus)
        qs.append([wk * sigmoid(dk) / p for wk, dk in zip(w, d, strict=True)])
    n, k = len(chosen), len(chosen[0])
    per_expert = [sum(c[j] - r[j] > 0 for c, r in zip(chosen, rejected, strict=True)) / n for j in range(k)]
    return {
        "mixture_accuracy": sum(acc) / n,
        "mixture_log_likelihood": sum(loglik) / n,
        "reward_accuracy": sum(reward_acc) / n,
        "expert_usage": [sum(q[j] for q in qs) / n for j in range(k)],
        "gate_weights": [sum(w[j] for w in weights) / n for j in range(k)],
        "per_expert_accuracy": per_expert,
        "correct": acc,
        "q": qs,
    }


# Six pairs, two experts, two groups (a: expert 0 is right, b: expert 1 is right), three users.
CHOSEN = [[1.5, -0.5], [0.7, 0.2], [-0.3, 1.1], [0.1, 2.0], [2.0, 1.0], [-1.0, 0.4]]
REJECTED = [[0.0, 0.5], [0.2, 1.0], [0.5, -0.2], [0.4, 0.3], [0.5, 1.5], [0.3, 0.2]]
WEIGHTS = [[0.5, 0.5], [0.9, 0.1], [0.2, 0.8], [0.55, 0.45], [0.6, 0.4], [0.45, 0.55]]
GROUPS = ["a", "a", "b", "b", "a", "b"]
USERS = ["u1", "u1", "u2", "u2", "u3", None]


def core(groups=GROUPS, users=USERS, weights=WEIGHTS):
    return preference_metrics(
        torch.tensor(CHOSEN),
        torch.tensor(REJECTED),
        torch.tensor(weights, dtype=torch.float64).log(),
        groups=groups,
        users=users,
    )


def test_overall_metrics_match_a_pair_by_pair_computation():
    out, ref = core(), reference_metrics(CHOSEN, REJECTED, WEIGHTS)
    assert out["num_pairs"] == 6
    assert out["num_experts"] == 2
    for key in ("mixture_accuracy", "mixture_log_likelihood", "reward_accuracy"):
        assert out[key] == pytest.approx(ref[key], rel=1e-6), key
    for key in ("expert_usage", "gate_weights", "per_expert_accuracy"):
        assert out[key] == pytest.approx(ref[key], rel=1e-6), key
    # A hand check of one pair: pair 0 has D = [1.5, -1.0], P = (sigmoid(1.5) + sigmoid(-1)) / 2 > 1/2.
    assert ref["correct"][0]


def test_group_and_user_breakdowns():
    out, ref = core(), reference_metrics(CHOSEN, REJECTED, WEIGHTS)
    correct, q = ref["correct"], ref["q"]
    rows = {"a": [0, 1, 4], "b": [2, 3, 5]}
    for g, idx in rows.items():
        assert out["per_group_accuracy"][g] == pytest.approx(sum(correct[i] for i in idx) / 3)
        mean_q = [sum(q[i][j] for i in idx) / 3 for j in range(2)]
        assert out["responsibilities_by_group"][g] == pytest.approx(mean_q)
        mean_w = [sum(WEIGHTS[i][j] for i in idx) / 3 for j in range(2)]
        assert out["gate_weights_by_group"][g] == pytest.approx(mean_w)
    assert out["per_group_pairs"] == {"a": 3, "b": 3}
    assert out["per_group_expert_accuracy"] == {
        "a": pytest.approx([1.0, 0.0]),
        "b": pytest.approx([0.0, 1.0]),
    }
    # Groups recovered: argmax q is 0 on a and 1 on b for these pairs.
    assert [max(range(2), key=lambda j, i=i: q[i][j]) for i in range(6)] == [0, 0, 1, 1, 0, 1]
    assert out["group_to_expert"] == {"a": 0, "b": 1}
    assert out["ari"] == pytest.approx(1.0)
    assert out["nmi"] == pytest.approx(1.0)
    # The gate's argmax is expert 0 on pairs 0 (tie -> 0), 1, 3, 4 and expert 1 on 2, 5: pair 3 is misrouted.
    assert out["routing_accuracy"] == pytest.approx(5 / 6)
    assert out["oracle_accuracy"] == pytest.approx(1.0)
    # Users: the pair without a user is left out of the user keys.
    assert set(out["per_user_accuracy"]) == {"u1", "u2", "u3"}
    assert out["per_user_accuracy"]["u1"] == pytest.approx((correct[0] + correct[1]) / 2)
    assert out["gate_weights_by_user"]["u3"] == pytest.approx(WEIGHTS[4])


def test_without_groups_or_users_their_keys_are_none():
    out = core(groups=None, users=[None] * 6)
    for key in (*GROUP_KEYS, *USER_KEYS):
        assert key in out
        assert out[key] is None, key
    assert out["mixture_accuracy"] == pytest.approx(
        reference_metrics(CHOSEN, REJECTED, WEIGHTS)["mixture_accuracy"]
    )


def test_one_group_has_no_ari_and_unlabelled_pairs_are_left_out():
    out = core(groups=["a", None, "a", None, "a", None])
    assert out["ari"] is None
    assert out["nmi"] is None
    assert out["group_to_expert"] == {"a": 0}
    assert set(out["per_group_accuracy"]) == {"a"}
    assert out["per_group_pairs"] == {"a": 3}  # the unlabelled pairs are not counted in any group


def test_k1_is_plain_dpo_accuracy_even_for_tiny_margins():
    margins = torch.tensor([[1e-30], [-1e-30], [3.0], [0.0], [-2.0], [1e-9]])
    out = preference_metrics(margins, torch.zeros_like(margins), torch.zeros_like(margins), groups=GROUPS)
    assert out["mixture_accuracy"] == pytest.approx(3 / 6)  # 1e-30, 3.0, 1e-9; the tie 0.0 counts as wrong
    assert out["reward_accuracy"] == out["mixture_accuracy"]
    assert out["per_expert_accuracy"] == [out["mixture_accuracy"]]
    assert out["expert_usage"] == [1.0]
    assert out["gate_weights"] == [1.0]
    # One cluster against two groups: no information.
    assert out["ari"] == 0.0
    assert out["nmi"] == 0.0
    assert out["group_to_expert"] == {"a": 0, "b": 0}
    assert out["routing_accuracy"] == 1.0
    assert out["oracle_accuracy"] == out["mixture_accuracy"]


def test_swapping_chosen_and_rejected_gives_the_complementary_accuracy():
    chosen, rejected, log_w = torch.tensor(CHOSEN), torch.tensor(REJECTED), torch.tensor(WEIGHTS).log()
    out = preference_metrics(chosen, rejected, log_w)
    swapped = preference_metrics(rejected, chosen, log_w)
    assert swapped["mixture_accuracy"] == pytest.approx(1 - out["mixture_accuracy"])
    assert swapped["per_expert_accuracy"] == pytest.approx([1 - a for a in out["per_expert_accuracy"]])


def test_extreme_margins_and_dropped_experts_stay_finite_and_json_clean():
    chosen = torch.tensor([[1e4, -1e4], [-1e4, 1e4], [-1e4, -1e4]])
    log_w = torch.tensor([[0.0, -math.inf], [math.log(0.4), math.log(0.6)], [0.0, -math.inf]])
    out = preference_metrics(chosen, torch.zeros_like(chosen), log_w, groups=["x", "y", "x"])
    assert out["mixture_accuracy"] == pytest.approx(2 / 3)
    assert out["mixture_log_likelihood"] == pytest.approx((0 + math.log(0.6) - 1e4) / 3, rel=1e-6)
    assert out["gate_weights"] == pytest.approx([2.4 / 3, 0.6 / 3])
    json.dumps(out, allow_nan=False)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="expected"):
        preference_metrics(torch.zeros(3, 2), torch.zeros(3, 1), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="no pairs"):
        preference_metrics(torch.zeros(0, 2), torch.zeros(0, 2), torch.zeros(0, 2))
    with pytest.raises(ValueError, match="groups"):
        preference_metrics(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3, 2), groups=["a"])


def test_a_mixture_tie_counts_as_wrong():
    chosen = torch.tensor([[-1e4, 1e4]])  # P = 1/2 exactly: expert 0 is sure of "no", expert 1 of "yes"
    out = preference_metrics(chosen, torch.zeros_like(chosen), torch.full((1, 2), math.log(0.5)))
    assert out["mixture_accuracy"] == 0.0
    assert out["mixture_log_likelihood"] == pytest.approx(math.log(0.5))
