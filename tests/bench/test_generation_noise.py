"""The noise check of the generation target: rewards of text generated from the same prompts compared prompt
by prompt (a paired difference), against an independent computation and on hand-made rows."""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy import stats

from mixdpo.bench.quality_report import check_targets
from mixdpo.bench.verdict import paired_difference

AXES = ("sentiment", "readability", "length")


def test_paired_difference_agrees_with_an_independent_z_test():
    rng = random.Random(0)
    for _ in range(300):
        n = rng.randint(2, 40)
        theirs = [rng.gauss(0, 1) for _ in range(n)]
        mine = [t + rng.gauss(rng.uniform(-1, 1), rng.uniform(0.1, 3)) for t in theirs]
        mean, margin = paired_difference(mine, theirs)
        d = np.asarray(mine) - np.asarray(theirs)
        assert mean == pytest.approx(d.mean())
        assert margin == pytest.approx(stats.norm.ppf(0.975) * stats.sem(d), rel=1e-3)  # Z = 1.96, rounded
        p = 2 * stats.norm.sf(abs(d.mean()) / stats.sem(d))
        if abs(p - 0.05) > 1e-3:  # away from the boundary, where 1.96 vs 1.95996 could tip it
            assert (abs(mean) > margin) == (p < 0.05)
    assert paired_difference([1.0], [0.0]) is None  # no spread from one prompt
    with pytest.raises(ValueError, match="3 vs 2"):
        paired_difference([1.0, 2.0, 3.0], [1.0, 2.0])


def _row(method: str, seed: int, rewards: dict[str, dict[str, list[float]]], mapping=None) -> dict:
    means = {src: {axis: sum(v) / len(v) for axis, v in by_axis.items()} for src, by_axis in rewards.items()}
    return {
        "case": {"task": "multi-reward", "method": method, "model": "m", "seed": seed},
        "num_experts": 3 if mapping else 1,
        "eval": {"mixture_accuracy": 0.6, "group_to_expert": mapping},
        "generation": means,
        "generation_rewards": rewards,
    }


def _rows(shift: float, jitter: float, seeds=(0, 1)) -> list[dict]:
    """Mix-DPO's axis experts (expert k for axis k) move their axis by ``shift`` + prompt noise over the
    reference; DPO moves every axis by shift / 4."""
    rng = random.Random(1)
    rows = []
    for seed in seeds:
        reference = {axis: [rng.gauss(0, 1) for _ in range(16)] for axis in AXES}
        experts = {}
        for k in range(3):  # expert k moves axis k
            moved = {a: shift if a == AXES[k] else 0.0 for a in AXES}
            noisy = {a: [r + moved[a] + rng.gauss(0, jitter) for r in reference[a]] for a in AXES}
            experts[f"expert:{k}"] = noisy
        dpo = {a: [r + shift / 4 + rng.gauss(0, jitter) for r in reference[a]] for a in AXES}
        mapping = {axis: k for k, axis in enumerate(AXES)}
        rows.append(_row("mix-dpo", seed, {"reference": reference, **experts}, mapping))
        rows.append(_row("dpo", seed, {"reference": reference, "expert:0": dpo}))
    return rows


def test_the_generation_target_needs_differences_beyond_the_prompts_noise():
    (clear,) = check_targets(_rows(shift=1.0, jitter=0.1))
    assert clear.met is True
    for part in clear.measured.split("; "):  # "<axis> <mine> vs <DPO's> (paired over 32 prompts: <d> ± ..."
        words = part.split()
        assert words[4:8] == ["(paired", "over", "32", "prompts:"]  # 2 seeds x 16 prompts
        # with the same reference texts, the paired mean is the difference of the two gains: about 1 - 1/4
        assert float(words[8]) == pytest.approx(float(words[1]) - float(words[3]), abs=0.011)
        assert float(words[8]) == pytest.approx(0.75, abs=0.1)
        assert words[11:13] == ["vs", "DPO,"]
        # over the reference: the expert's own gain, shown before the parenthesis
        assert float(words[13]) == pytest.approx(float(words[1]), abs=0.011)
        assert part.endswith("over the reference)")
    assert "no noise check" not in clear.measured
    # The same mean shifts drowned in per-prompt noise: the means alone would call it met
    (noisy,) = check_targets(_rows(shift=1.0, jitter=3.0))
    gains = [float(part.split()[1]) for part in noisy.measured.split("; ")]
    assert sum(g > 0 for g in gains) >= 2  # the means still favour Mix-DPO on at least two axes ...
    assert noisy.met is False  # ... but not beyond noise
    # A row without per-prompt rewards (measured before they were kept): means only, and said so
    rows = _rows(shift=1.0, jitter=3.0)
    del rows[0]["generation_rewards"]
    (unchecked,) = check_targets(rows)
    assert unchecked.measured.endswith("(no noise check: rows without per-prompt rewards)")
