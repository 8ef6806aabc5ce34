"""Preference pairs from scored completions, the paper's way: per prompt and per reward axis, the best
completion is chosen and the worst rejected when their scores differ by at least the axis's margin. Pairs of
all axes are pooled; the axis is kept as the hidden ``group`` (for evaluation only, never for training)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Smallest score gap that makes a pair, per reward (their scales differ: see mixdpo.rewards).
DEFAULT_MARGINS = {
    "sentiment": 0.2,
    "readability": 10.0,
    "spelling": 0.1,
    "non_toxicity": 0.2,
    "length": 5.0,
    "brevity": 0.1,
    "distinct_2": 0.1,
    "fluency": 0.5,
}


def pairs_for_prompt(
    prompt: Any,
    completions: Sequence[Any],
    scores: Mapping[str, Sequence[float]],
    margins: Mapping[str, float],
) -> list[dict[str, Any]]:
    """One pair per axis whose best and worst completions differ by >= its margin (and are different texts).

    Returns rows ``{"prompt", "chosen", "rejected", "group", "score_chosen", "score_rejected"}``.
    """
    rows = []
    for axis, values in scores.items():
        if len(values) != len(completions):
            raise ValueError(f"{axis}: {len(values)} scores for {len(completions)} completions")
        best = max(range(len(values)), key=lambda i: (values[i], -i))
        worst = min(range(len(values)), key=lambda i: (values[i], i))
        if values[best] - values[worst] < margins[axis] or completions[best] == completions[worst]:
            continue
        rows.append(
            {
                "prompt": prompt,
                "chosen": completions[best],
                "rejected": completions[worst],
                "group": axis,
                "score_chosen": values[best],
                "score_rejected": values[worst],
            }
        )
    return rows
