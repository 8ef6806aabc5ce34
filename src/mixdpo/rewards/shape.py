"""Rewards on the shape of a text: length, brevity and distinct-n diversity."""

from __future__ import annotations

from collections.abc import Sequence

from mixdpo.rewards.base import words


def length(texts: Sequence[str]) -> list[float]:
    """Number of words, in [0, inf); higher = longer (informativeness proxy)."""
    return [float(len(words(t))) for t in texts]


def brevity(texts: Sequence[str]) -> list[float]:
    """1 / (1 + words / 20), in (0, 1]; higher = more concise (20 words score 0.5)."""
    return [1.0 / (1.0 + len(words(t)) / 20.0) for t in texts]


def distinct_n(texts: Sequence[str], n: int = 2) -> list[float]:
    """Unique word n-grams / all word n-grams within each text, in [0, 1]; higher = less repetitive. A text
    with fewer than n words scores 1."""
    out = []
    for text in texts:
        tokens = words(text)
        grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        out.append(len(set(grams)) / len(grams) if grams else 1.0)
    return out
