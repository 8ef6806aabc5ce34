"""The mixture policy: experts + gate + references + tokenizer; save/load, scoring and generation."""

from mixdpo.policy.config import PolicyConfig
from mixdpo.policy.generation import ROUTINGS, Generation, draw_experts
from mixdpo.policy.mixture_policy import MixturePolicy, PolicyOutputs
from mixdpo.policy.scoring import Scores

__all__ = [
    "ROUTINGS",
    "Generation",
    "MixturePolicy",
    "PolicyConfig",
    "PolicyOutputs",
    "Scores",
    "draw_experts",
]
