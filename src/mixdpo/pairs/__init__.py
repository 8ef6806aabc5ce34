"""Preference pairs from a model's own samples scored by reward functions (``mixdpo make-pairs``)."""

from mixdpo.pairs.construct import DEFAULT_MARGINS, pairs_for_prompt
from mixdpo.pairs.make import PairSettings, make_pairs, write_pairs
from mixdpo.pairs.prompts import BUILTIN, builtin_prompts, load_prompts

__all__ = [
    "BUILTIN",
    "DEFAULT_MARGINS",
    "PairSettings",
    "builtin_prompts",
    "load_prompts",
    "make_pairs",
    "pairs_for_prompt",
    "write_pairs",
]
