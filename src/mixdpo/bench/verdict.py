"""Wins, ties and losses between two methods' held-out accuracies, with the noise a reader should allow for.

Two sources of noise decide whether a difference is a tie: training (the spread over seeds) and the
finite held-out set (each accuracy is a proportion of n pairs, so a single run's accuracy moves by about
sqrt(a (1 - a) / n) from the set's draw alone: 4.6 points at a = 0.5 on 120 pairs). With one seed only the
second is visible, and it is the one that kept a +5-point difference on 120 pairs from being called a win.

Generated text is compared the same way in spirit but paired: every source generates from the same held-out
prompts, so :func:`paired_difference` tests the per-prompt differences of two sources' rewards.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

TIE_POINTS = 2.0  # never call a difference smaller than this a win, however many pairs
Z = 1.96  # two-sided 95% normal quantile
TIE_RULE = (
    "A difference is a tie when it is within 2 points, within the larger spread over seeds, or within 1.96 "
    "standard errors of the held-out sets' sampling noise (binomial, sqrt(a (1 - a) / n) per method and "
    "seed, n = the held-out pairs an accuracy rests on, combined unpaired, which usually overstates the "
    "noise of two methods scored on the same pairs): with one seed, 120 held-out pairs and accuracies "
    f"near 50%, differences under about {100 * Z * math.sqrt(2 * 0.25 / 120):.1f} points are ties. Where "
    "both methods' rows keep every held-out pair's outcome (`pair_correct`; older rows lack it), the "
    "accuracy's sampling noise is paired instead: the standard error of the mean per-pair difference, "
    "sd(d) / sqrt(n) per seed, which counts only the pairs the two methods disagree on."
)


def mean_spread(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """(mean, sample standard deviation) of the values that are not None; spread 0.0 for one value."""
    got = [float(v) for v in values if v is not None]
    if not got:
        return None, None
    return statistics.fmean(got), (statistics.stdev(got) if len(got) > 1 else 0.0)


def sampling_error(values: Sequence[float | None], pairs: Sequence[int | float | None]) -> float | None:
    """Binomial standard error of the mean of ``values`` (accuracies in [0, 1], one per seed), each measured
    on ``pairs[i]`` held-out pairs: sqrt(sum_i a_i (1 - a_i) / n_i) / s over the s measured runs.

    None when a run's pair count is unknown (rows written before counts were stored)."""
    measured = [(float(a), n) for a, n in zip(values, pairs, strict=True) if a is not None]
    if not measured or any(n is None or n <= 0 for _, n in measured):
        return None
    return math.sqrt(sum(a * (1.0 - a) / n for a, n in measured)) / len(measured)


def paired_sampling_error(outcomes: Sequence[tuple[str, str]]) -> float | None:
    """Standard error of the mean over seeds of the paired accuracy difference of two methods scored on the
    same held-out pairs.

    Args:
        outcomes: per seed s, the two methods' outcome strings, one character per held-out pair ("1" right,
            "0" wrong, anything else not scored), aligned by pair.

    Returns:
        sqrt(sum_s var(d_s) / n_s) / S, with d_si = [mine right on i] - [theirs right on i] over the n_s
        pairs both scored and var the sample variance; None without seeds, when a seed's strings differ
        in length, or when a seed has fewer than 2 pairs scored by both.
    """
    if not outcomes:
        return None
    total = 0.0
    for mine, theirs in outcomes:
        if len(mine) != len(theirs):
            return None
        diffs = [int(a) - int(b) for a, b in zip(mine, theirs, strict=True) if a in "01" and b in "01"]
        if len(diffs) < 2:
            return None
        total += statistics.variance(diffs) / len(diffs)
    return math.sqrt(total) / len(outcomes)


def seed_outcomes(
    mine: Mapping[int, str | None], theirs: Mapping[int, str | None]
) -> list[tuple[str, str]] | None:
    """The two methods' outcome strings per seed, in seed order (:func:`compare`'s ``paired``), from
    {seed: outcome string or None}; None unless both measured the same seeds and every seed kept its
    outcomes (rows measured before outcomes were kept have none)."""
    if not mine or mine.keys() != theirs.keys():
        return None
    pairs = [(mine[seed], theirs[seed]) for seed in sorted(mine)]
    return pairs if all(a and b for a, b in pairs) else None  # type: ignore[misc]


def compare(
    mine: Sequence[float | None],
    theirs: Sequence[float | None],
    mine_pairs: Sequence[int | float | None] | None = None,
    theirs_pairs: Sequence[int | float | None] | None = None,
    paired: Sequence[tuple[str, str]] | None = None,
) -> tuple[str, float | None]:
    """("wins" | "ties" | "loses", difference of means in points) of two methods' accuracies over seeds.

    A tie when |mean(mine) - mean(theirs)| is within the largest of: :data:`TIE_POINTS`; the larger sample
    standard deviation over seeds; and, when the held-out pair counts are given, Z = 1.96 standard errors
    of the difference from the finite held-out sets, sqrt(se_mine^2 + se_theirs^2) (see
    :func:`sampling_error`). Both methods are scored on the same pairs, whose outcomes usually agree (easy
    pairs are easy for both), so this unpaired error usually overstates the paired one: it errs towards
    "ties". With ``paired`` (every seed's outcome strings of both methods, see
    :func:`paired_sampling_error`) the held-out sets' noise is Z paired standard errors instead."""
    (m, m_sd), (t, t_sd) = mean_spread(mine), mean_spread(theirs)
    if m is None or t is None:
        return "not measured", None
    delta = 100 * (m - t)
    margin = max(100 * max(m_sd or 0.0, t_sd or 0.0), TIE_POINTS)
    se_paired = paired_sampling_error(paired) if paired else None
    if se_paired is not None:
        margin = max(margin, 100 * Z * se_paired)
    elif mine_pairs is not None and theirs_pairs is not None:
        se_m, se_t = sampling_error(mine, mine_pairs), sampling_error(theirs, theirs_pairs)
        if se_m is not None and se_t is not None:
            margin = max(margin, 100 * Z * math.hypot(se_m, se_t))
    # compared as printed (0.1 points): a 2.0-point difference is the 2-point tie it reads as
    return ("ties" if abs(round(delta, 1)) <= margin else "wins" if delta > 0 else "loses"), delta


def paired_difference(mine: Sequence[float], theirs: Sequence[float]) -> tuple[float, float] | None:
    """(mean, 95% margin) of the paired differences d_i = mine[i] - theirs[i] of two sources scored on the
    same items (e.g. the rewards of text generated from the same held-out prompts): mean(d) and
    Z * sd(d) / sqrt(n), sd the sample standard deviation. A difference is beyond noise when
    |mean| > margin. None with fewer than 2 items (no spread to estimate)."""
    if len(mine) != len(theirs):
        raise ValueError(f"paired items differ in number: {len(mine)} vs {len(theirs)}")
    diffs = [float(a) - float(b) for a, b in zip(mine, theirs, strict=True)]
    if len(diffs) < 2:
        return None
    return statistics.fmean(diffs), Z * statistics.stdev(diffs) / math.sqrt(len(diffs))
