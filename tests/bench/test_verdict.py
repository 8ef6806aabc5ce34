"""Verdicts between two methods: the tie margin against an independent two-proportion z-test."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from mixdpo.bench.verdict import compare, mean_spread, paired_sampling_error, sampling_error, seed_outcomes


def test_sampling_error_is_the_binomial_standard_error_of_the_mean():
    assert sampling_error([0.5], [100]) == pytest.approx(0.05)
    # two seeds: Var(mean) = (a1 (1 - a1) / n1 + a2 (1 - a2) / n2) / 4
    assert sampling_error([0.5, 0.9], [100, 50]) == pytest.approx(math.sqrt(0.25 / 100 + 0.09 / 50) / 2)
    assert sampling_error([0.5, None], [100, None]) == pytest.approx(0.05)  # unmeasured runs are skipped
    assert sampling_error([0.5], [None]) is None  # a count unknown: no sampling term
    assert sampling_error([None], [100]) is None


def test_one_seed_verdicts_match_a_two_proportion_z_test():
    """With one seed each the margin is max(2 points, 1.96 SE): a difference is a win or loss exactly when
    the unpooled two-proportion z statistic exceeds 1.96 and the difference exceeds 2 points."""
    rng = random.Random(0)
    checked = 0
    for _ in range(400):
        n = rng.choice([40, 96, 120, 240, 1000, 20000])
        a, b = rng.randint(0, n) / n, rng.randint(0, n) / n
        se = math.sqrt(a * (1 - a) / n + b * (1 - b) / n)
        diff = 100 * (a - b)
        z = abs(a - b) / se if se > 0 else math.inf
        margin = max(2.0, 100 * 1.96 * se)
        if abs(abs(round(diff, 1)) - margin) < 0.2:  # too close to the boundary to tell from rounding
            continue
        expected = "ties" if abs(diff) <= 2.0 or z <= 1.96 else ("wins" if a > b else "loses")
        outcome, delta = compare([a], [b], [n], [n])
        assert outcome == expected, (a, b, n)
        assert delta == pytest.approx(diff)
        checked += 1
    assert checked > 300


def test_the_larger_of_spread_floor_and_sampling_noise_decides():
    # +5 points on 120 pairs at one seed: a win by the 2-point floor, a tie once the pairs are counted
    assert compare([0.55], [0.50]) == ("wins", pytest.approx(5.0))
    assert compare([0.55], [0.50], [120], [120]) == ("ties", pytest.approx(5.0))
    # the many-users row of SmolLM2 (240 users x 4 pairs): 100% vs 62.9% on 240 pairs is a clear win
    assert compare([1.0], [0.629], [240], [240])[0] == "wins"
    # three seeds whose spread (10 points) is larger than the sampling noise on 10,000 pairs
    mine, theirs = [0.7, 0.8, 0.9], [0.72, 0.72, 0.72]
    assert statistics.stdev(mine) == pytest.approx(0.1)
    assert compare(mine, theirs, [10_000] * 3, [10_000] * 3) == ("ties", pytest.approx(8.0))
    # counts for only one side: the sampling term is left out
    assert compare([0.55], [0.50], [120], None)[0] == "wins"
    assert compare([None], [0.5], [1], [1]) == ("not measured", None)
    assert mean_spread([0.2, None, 0.4]) == pytest.approx((0.3, statistics.stdev([0.2, 0.4])))


def _outcomes(n: int, mine_only: int, theirs_only: int, both: int) -> tuple[str, str]:
    """Outcome strings of n pairs: ``mine_only`` pairs right for mine alone, ``theirs_only`` for theirs
    alone, ``both`` for both, the rest wrong for both."""
    mine = "1" * mine_only + "0" * theirs_only + "1" * both
    theirs = "0" * mine_only + "1" * theirs_only + "1" * both
    return mine.ljust(n, "0"), theirs.ljust(n, "0")


def test_paired_error_is_the_standard_error_of_the_discordant_pairs():
    # d_i in {-1, 0, 1}: with b = mine-only and c = theirs-only pairs of n, mean (b - c) / n and sample
    # variance (b + c - n mean^2) / (n - 1), the textbook form of McNemar's paired difference
    for n, b, c in ((120, 6, 0), (120, 20, 14), (40, 3, 9), (1000, 0, 1)):
        mean = (b - c) / n
        variance = (b + c - n * mean**2) / (n - 1)
        mine, theirs = _outcomes(n, b, c, both=n // 3)
        assert paired_sampling_error([(mine, theirs)]) == pytest.approx(math.sqrt(variance / n))
    # two seeds: the variances of the two seeds' differences add, the mean over seeds halves the error
    s1, s2 = _outcomes(120, 6, 0, 50), _outcomes(96, 10, 4, 40)
    one, two = paired_sampling_error([s1]), paired_sampling_error([s2])
    assert paired_sampling_error([s1, s2]) == pytest.approx(math.hypot(one, two) / 2)
    # pairs either side did not score ("." : left out) are not pairs
    assert paired_sampling_error([("1.10", "0001")]) == paired_sampling_error([("110", "001")])
    assert paired_sampling_error([("10", "0")]) is None  # not aligned
    assert paired_sampling_error([("1", "0")]) is None  # no spread to estimate
    assert paired_sampling_error([]) is None


def test_a_paired_test_sees_what_the_unpaired_one_hides():
    # +5 points on 120 pairs: unpaired a tie (margin 12.6 points); paired, when the 6 pairs mine gains are
    # the only disagreements, a win (margin 1.96 * 2.0 = 3.9 points)
    mine, theirs = _outcomes(120, 6, 0, both=60)
    assert compare([0.55], [0.50], [120], [120]) == ("ties", pytest.approx(5.0))
    assert compare([0.55], [0.50], [120], [120], paired=[(mine, theirs)]) == ("wins", pytest.approx(5.0))
    # the same +5 from 30 pairs gained and 24 lost is noise, paired too
    mine, theirs = _outcomes(120, 30, 24, both=30)
    assert compare([0.55], [0.50], [120], [120], paired=[(mine, theirs)])[0] == "ties"
    # outcomes that cannot be paired: the unpaired error is used
    assert compare([0.55], [0.50], [120], [120], paired=[("1", "0")])[0] == "ties"


def test_seed_outcomes_pairs_seed_by_seed_or_not_at_all():
    assert seed_outcomes({1: "10", 0: "01"}, {0: "00", 1: "11"}) == [("01", "00"), ("10", "11")]
    assert seed_outcomes({0: "01"}, {0: "00", 1: "11"}) is None  # seeds differ
    assert seed_outcomes({0: "01", 1: None}, {0: "00", 1: "11"}) is None  # a row without outcomes
    assert seed_outcomes({}, {}) is None
