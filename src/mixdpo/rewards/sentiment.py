"""Sentiment: VADER's compound polarity (Hutto & Gilbert 2014), in [-1, 1]; higher = more positive.

VADER is a lexicon and rule model (negation, intensifiers, punctuation) tuned on social-media and review
text; it runs offline at ~18k texts/s.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache


@lru_cache(maxsize=1)
def _analyzer():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def sentiment(texts: Sequence[str]) -> list[float]:
    """VADER compound score per text, in [-1, 1] (0 for texts without sentiment words)."""
    analyzer = _analyzer()
    return [analyzer.polarity_scores(t)["compound"] for t in texts]
