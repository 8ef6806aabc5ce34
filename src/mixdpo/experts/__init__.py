"""Expert backends: K expert policies and their references behind one interface returning [N, K] log-probs."""

from mixdpo.experts.base import GATE_FEATURES, ExpertBackend, mean_pool, pooled_prompt_features
from mixdpo.experts.heads import ARCHITECTURES, HeadsExperts
from mixdpo.experts.independent import IndependentExperts
from mixdpo.experts.lora import LoraExperts

BACKENDS = ("lora", "heads", "independent")

__all__ = [
    "ARCHITECTURES",
    "BACKENDS",
    "GATE_FEATURES",
    "ExpertBackend",
    "HeadsExperts",
    "IndependentExperts",
    "LoraExperts",
    "mean_pool",
    "pooled_prompt_features",
]
