"""Non-toxicity: 1 - the offensive-language probability of alt-profanity-check (a linear SVM on TF-IDF
features trained on 200k human-labelled texts), in [0, 1]; higher = cleaner. ~60k texts/s offline."""

from __future__ import annotations

import warnings
from collections.abc import Sequence


def non_toxicity(texts: Sequence[str]) -> list[float]:
    """1 - P(offensive) per text."""
    if not texts:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its pickled model predates the installed scikit-learn
        from profanity_check import predict_prob

        probs = predict_prob(list(texts))
    return [1.0 - float(p) for p in probs]
