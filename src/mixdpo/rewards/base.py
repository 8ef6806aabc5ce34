"""What a reward function is: a batched, deterministic map from texts to numbers, with a stated range and
direction (higher is better for every reward shipped here, so "chosen" is always the higher-scoring text)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RewardFunction:
    """A named text reward.

    Attributes:
        name: registry key (``sentiment``, ``readability``, ...).
        score: ``texts -> scores``, one float per text, deterministic.
        low, high: the range of the scores (``float("-inf")`` / ``inf`` when unbounded).
        description: what it measures, in one line.
    """

    name: str
    score: Callable[[Sequence[str]], list[float]]
    low: float
    high: float
    description: str

    def __call__(self, texts: Sequence[str]) -> list[float]:
        if isinstance(texts, str):
            raise TypeError(f"reward {self.name!r} scores a list of texts, got one string")
        return [float(v) for v in self.score(list(texts))]


def words(text: str) -> list[str]:
    """Lower-cased alphabetic words (apostrophes kept inside words): the unit of the text rewards."""
    import re

    return re.findall(r"[a-z]+(?:'[a-z]+)*", text.lower())
