"""Reward functions over text that run offline: batched, deterministic, each with a range and a direction
(higher is better for all of them). ``REWARDS`` holds the model-free ones by name;
:func:`~mixdpo.rewards.fluency.fluency_reward` builds the model-based one.

    from mixdpo.rewards import REWARDS, score_texts
    score_texts(["sentiment", "readability"], ["A warm, funny film.", "Inscrutable."])
"""

from __future__ import annotations

from collections.abc import Sequence

from mixdpo.errors import ConfigError
from mixdpo.rewards.base import RewardFunction
from mixdpo.rewards.fluency import fluency_reward, mean_token_logprob
from mixdpo.rewards.readability import flesch_reading_ease, readability
from mixdpo.rewards.sentiment import sentiment
from mixdpo.rewards.shape import brevity, distinct_n, length
from mixdpo.rewards.spelling import spelling
from mixdpo.rewards.toxicity import non_toxicity

_INF = float("inf")
REWARDS: dict[str, RewardFunction] = {
    r.name: r
    for r in (
        RewardFunction("sentiment", sentiment, -1.0, 1.0, "VADER compound polarity (positive = higher)"),
        RewardFunction("readability", readability, -_INF, _INF, "Flesch reading ease (easier = higher)"),
        RewardFunction("spelling", spelling, 0.0, 1.0, "share of correctly spelled words"),
        RewardFunction("non_toxicity", non_toxicity, 0.0, 1.0, "1 - offensive-language probability"),
        RewardFunction("length", length, 0.0, _INF, "number of words (informativeness proxy)"),
        RewardFunction("brevity", brevity, 0.0, 1.0, "1 / (1 + words / 20): conciseness"),
        RewardFunction("distinct_2", distinct_n, 0.0, 1.0, "unique / all word bigrams: diversity"),
    )
}


def get_reward(name: str) -> RewardFunction:
    """The model-free reward called ``name`` (a ConfigError listing the known ones otherwise)."""
    if name not in REWARDS:
        raise ConfigError("reward", f"unknown reward {name!r}; choose from {', '.join(REWARDS)} (or fluency)")
    return REWARDS[name]


def score_texts(names: Sequence[str], texts: Sequence[str]) -> dict[str, list[float]]:
    """``{name: [score per text]}`` for the named model-free rewards."""
    return {name: get_reward(name)(texts) for name in names}


__all__ = [
    "REWARDS",
    "RewardFunction",
    "brevity",
    "distinct_n",
    "flesch_reading_ease",
    "fluency_reward",
    "get_reward",
    "length",
    "mean_token_logprob",
    "non_toxicity",
    "readability",
    "score_texts",
    "sentiment",
    "spelling",
]
