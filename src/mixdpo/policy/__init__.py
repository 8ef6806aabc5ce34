"""The mixture policy: experts + gate + references + tokenizer; save/load, scoring and generation."""

from mixdpo.policy.config import PolicyConfig
from mixdpo.policy.mixture_policy import MixturePolicy, PolicyOutputs

__all__ = ["MixturePolicy", "PolicyConfig", "PolicyOutputs"]
