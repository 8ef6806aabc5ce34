"""The capacity and steerability regimes answered from hand-made quality rows: each case's verdict and the
count of cases where the hypothesis holds, ties or fails."""

from __future__ import annotations

from mixdpo.bench.quality_regimes import capacity_answer, regimes_markdown, steering_answer


def _row(model, task, method, seed, acc, worst=None, lora_r=8, generation=None, mapping=None):
    worst = acc if worst is None else worst
    return {
        "case": {"model": model, "task": task, "method": method, "seed": seed},
        "lora_r": lora_r,
        "eval": {
            "mixture_accuracy": acc,
            "per_group_accuracy": {"a": acc, "b": worst},
            "num_pairs": 10_000,
            "group_to_expert": mapping,
        },
        "generation": generation,
    }


def test_capacity_counts_wins_ties_and_losses_against_the_wide_adapter():
    rows = [
        # MoE-DPO far ahead of one rank-16 adapter on cross-domain: the hypothesis holds
        _row("m", "cross-domain", "moe-dpo", 0, 0.90),
        _row("m", "cross-domain", "wide-dpo", 0, 0.60, lora_r=16),
        # within 2 points on personas: a tie
        _row("m", "personas", "moe-dpo", 0, 0.51),
        _row("m", "personas", "wide-dpo", 0, 0.50, lora_r=16),
        # Mix-DPO behind the rank-24 adapter on multi-reward: it fails
        _row("m", "multi-reward", "mix-dpo", 0, 0.55),
        _row("m", "multi-reward", "wide-dpo", 0, 0.68, lora_r=24),
        # no wide row: not counted
        _row("n", "cross-domain", "moe-dpo", 0, 0.9),
    ]  # fmt: skip
    text = capacity_answer(rows)
    assert (
        "`m` · cross-domain: MoE-DPO / one adapter of rank 16: 90.0 ± 0.0 / 60.0 ± 0.0 %, MoE-DPO wins"
        in text
    )
    assert "(+30.0 points): the hypothesis holds." in text
    assert "MoE-DPO ties (+1.0 points): the hypothesis is not shown (a tie)." in text
    assert "`m` · multi-reward: Mix-DPO / one adapter of rank 24" in text
    assert "Mix-DPO loses (-13.0 points): the hypothesis fails." in text
    assert "`n`" not in text
    assert "In all: holds on 1, a tie on 1, fails on 1 of 3 model-task cases." in text
    assert "not measured (no `wide-dpo` rows)" in capacity_answer(rows[-1:])


def test_steerability_follows_the_multi_reward_target():
    def gen(sentiment, readability, length):
        return {"reference": {"sentiment": 0.0, "readability": 0.0, "length": 0.0},
                "expert:0": {"sentiment": sentiment, "readability": readability, "length": length},
                "expert:1": {"sentiment": 0.0, "readability": 5.0, "length": 3.0}}  # fmt: skip

    mapping = {"sentiment": 0, "readability": 1, "length": 1}
    rows = [
        # Mix-DPO's axis experts: sentiment +0.2 (DPO +0.1), readability +5 (DPO +1), length +3 (DPO +4)
        _row("m", "multi-reward", "mix-dpo", 0, 0.6, generation=gen(0.2, 0.0, 0.0), mapping=mapping),
        _row("m", "multi-reward", "dpo", 0, 0.6, generation=gen(0.1, 1.0, 4.0)),
    ]
    text = steering_answer(rows)
    assert (
        "- `m` (1 seed): the hypothesis holds: sentiment +0.20 vs +0.10; readability +5.00 vs +1.00;" in text
    )
    assert "In all: holds on 1 of 1 models." in text
    # DPO moves readability further too: only one axis of three is left, and the hypothesis fails
    rows[1]["generation"] = gen(0.1, 6.0, 4.0)
    assert "the hypothesis fails" in steering_answer(rows)
    assert "not measured" in steering_answer(rows[:1])
    both = regimes_markdown(rows)
    assert both.index("**Capacity-limited adapters.**") < both.index("**Steerability")
