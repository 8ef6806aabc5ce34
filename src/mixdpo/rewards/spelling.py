"""Spelling: the share of a text's words found in pyspellchecker's English frequency dictionary, in [0, 1];
higher = fewer misspellings. A text without words scores 1 (nothing misspelled)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from mixdpo.rewards.base import words


@lru_cache(maxsize=1)
def _checker():
    from spellchecker import SpellChecker

    return SpellChecker(language="en")


def spelling(texts: Sequence[str]) -> list[float]:
    """1 - (unknown words / words) per text."""
    checker = _checker()
    out = []
    for text in texts:
        tokens = words(text)
        unknown = checker.unknown(tokens)
        out.append(1.0 - sum(w in unknown for w in tokens) / len(tokens) if tokens else 1.0)
    return out
