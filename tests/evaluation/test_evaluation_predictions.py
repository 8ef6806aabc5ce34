"""Per-pair predictions: each field against a hand computation in plain Python, agreement with the averaged
metrics, and the file ``evaluate_policy(..., predictions=...)`` writes for a real (tiny) mixture."""

from __future__ import annotations

import json
import math

import pytest
import torch

from mixdpo.data import TokenizationSettings, build_preference_dataset
from mixdpo.evaluation import (
    PairScores,
    evaluate_policy,
    pair_predictions,
    preference_metrics,
    read_predictions,
    write_predictions,
)
from mixdpo.policy import MixturePolicy, PolicyConfig

CHOSEN = [[1.0, -0.5], [0.2, 0.3], [-2.0, 0.1], [0.0, -1.0]]
REJECTED = [[0.0, 0.5], [0.4, -0.3], [1.0, 0.0], [0.5, -0.2]]
WEIGHTS = [[0.7, 0.3], [0.5, 0.5], [0.1, 0.9], [1.0, 0.0]]  # the last pair: expert 1 dropped by top-k


def scores() -> PairScores:
    log_w = torch.tensor(WEIGHTS, dtype=torch.float64).log()  # log 0 = -inf, as top-k routing leaves it
    return PairScores(torch.tensor(CHOSEN), torch.tensor(REJECTED), log_w, ["a", "b", "a", None],
                      ["u1", None, "u2", "u1"])  # fmt: skip


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_each_field_matches_a_hand_computation():
    rows = pair_predictions(scores(), rows=[3, 5, 6, 9])
    assert [r["pair"] for r in rows] == [0, 1, 2, 3]
    assert [r["row"] for r in rows] == [3, 5, 6, 9]
    assert [r["group"] for r in rows] == ["a", "b", "a", None]
    assert [r["user_id"] for r in rows] == ["u1", None, "u2", "u1"]
    for row, c, r, w in zip(rows, CHOSEN, REJECTED, WEIGHTS, strict=True):
        d = [ck - rk for ck, rk in zip(c, r, strict=True)]
        terms = [wk * sigmoid(dk) for wk, dk in zip(w, d, strict=True)]
        p = sum(terms)
        assert row["margins"] == pytest.approx(d, abs=1e-6)
        assert row["weights"] == pytest.approx(w)
        assert row["p_chosen"] == pytest.approx(p)
        assert row["responsibilities"] == pytest.approx([t / p for t in terms])
        assert row["correct"] is (p > 0.5)
        assert row["expert"] == max(range(2), key=lambda k: w[k])
    # 0.7 s(1) + 0.3 s(-1) = 0.64; 0.5 s(-0.2) + 0.5 s(0.6) = 0.55 (the experts disagree, the mixture
    # follows the surer one); 0.1 s(-3) + 0.9 s(0.1) = 0.47; s(-0.5) = 0.38
    assert [r["correct"] for r in rows] == [True, True, False, False]
    assert rows[3]["responsibilities"] == [1.0, 0.0]  # a dropped expert takes no responsibility
    json.loads(json.dumps(rows, allow_nan=False))


def test_the_rows_average_to_the_metrics():
    s = scores()
    rows = pair_predictions(s)
    metrics = preference_metrics(s.chosen_rewards, s.rejected_rewards, s.log_weights, groups=s.groups)
    assert metrics["mixture_accuracy"] == pytest.approx(sum(r["correct"] for r in rows) / len(rows))
    assert metrics["mixture_log_likelihood"] == pytest.approx(
        sum(math.log(r["p_chosen"]) for r in rows) / len(rows)
    )
    for k in range(2):
        assert metrics["expert_usage"][k] == pytest.approx(sum(r["responsibilities"][k] for r in rows) / 4)
    group_a = [r["correct"] for r in rows if r["group"] == "a"]
    assert metrics["per_group_accuracy"]["a"] == pytest.approx(sum(group_a) / len(group_a))


def test_errors_and_the_file_round_trip(tmp_path):
    with pytest.raises(ValueError, match="3 source rows for 4 pairs"):
        pair_predictions(scores(), rows=[1, 2, 3])
    rows = pair_predictions(scores())
    assert read_predictions(write_predictions(tmp_path / "sub" / "p.jsonl", rows)) == rows
    assert len((tmp_path / "sub" / "p.jsonl").read_text().splitlines()) == 4


def test_evaluate_policy_writes_one_row_per_pair_in_dataset_order(tmp_path):
    policy = MixturePolicy.create(PolicyConfig(model="random:gpt2-tiny", num_experts=2, gate="user"),
                                  users=["u0", "u1"])  # fmt: skip
    data = [{"prompt": f"Q{i}: say something", "chosen": " yes" * (1 + i % 3), "rejected": " no",
             "user_id": f"u{i % 2}", "group": "g" + str(i % 2)} for i in range(7)]  # fmt: skip
    data[3] = {"prompt": "", "chosen": " x", "rejected": " y"}  # an invalid row, skipped: rows keep numbering
    dataset, _ = build_preference_dataset(data, policy.tokenizer, TokenizationSettings(max_length=64),
                                          skip_invalid=True)  # fmt: skip
    out = tmp_path / "pred.jsonl"
    result = evaluate_policy(policy, dataset, batch_size=4, predictions=out)
    rows = read_predictions(out)
    assert len(rows) == result["num_pairs"] == 6
    assert [r["row"] for r in rows] == [dataset.source(i)[1] for i in range(6)]
    assert [r["row"] for r in rows] == [1, 2, 3, 5, 6, 7]  # row 4 was skipped
    assert [r["user_id"] for r in rows] == [f"u{i % 2}" for i in (0, 1, 2, 4, 5, 6)]
    assert result["mixture_accuracy"] == pytest.approx(sum(r["correct"] for r in rows) / 6)
    for r in rows:
        assert sum(r["weights"]) == pytest.approx(1.0)
        assert sum(r["responsibilities"]) == pytest.approx(1.0)
    assert evaluate_policy(policy, dataset, batch_size=4) == result  # the file changes nothing in the result
