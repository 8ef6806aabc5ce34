"""mixdpo: Mix-DPO and MoE-DPO — align language models to heterogeneous preferences with a mixture of
expert policies and a gate, fitted by stochastic variational EM (Bohne et al., arXiv 2510.08256).

Importing ``mixdpo`` is cheap; submodules (``mixdpo.objective`` ...) load torch when first used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public names -> the submodule that defines them; resolved on first access (PEP 562) so that
# `mixdpo --help` does not pay for importing torch and transformers.
_LAZY: dict[str, str] = {
    "MixDPOConfig": "mixdpo.trainer",
    "MixDPOTrainer": "mixdpo.trainer",
    "MixturePolicy": "mixdpo.policy",
    "PolicyConfig": "mixdpo.policy",
    "build_preference_dataset": "mixdpo.data",
    "load_model_and_tokenizer": "mixdpo.models",
    "ObjectiveConfig": "mixdpo.objective",
    "mix_dpo_objective": "mixdpo.objective",
    "objective_metrics": "mixdpo.objective",
    "MixDPOError": "mixdpo.errors",
    "ConfigError": "mixdpo.errors",
    "DataError": "mixdpo.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mixdpo' has no attribute {name!r}")
