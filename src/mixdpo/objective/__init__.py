"""The Mix-DPO / MoE-DPO objective as pure tensor functions (DESIGN.md section 2).

No models and no I/O live here: every function takes and returns tensors of shape [B, K] (B pairs,
K experts) or [B], and each formula is tested against an independent computation.
"""

from mixdpo.objective.elbo import ElboTerms, elbo_terms
from mixdpo.objective.estep import ESTEP_MODES, anneal_temperature, gumbel_noise, responsibilities
from mixdpo.objective.loss import OBJECTIVES, ObjectiveConfig, ObjectiveOutput, mix_dpo_objective
from mixdpo.objective.margins import expert_margins, implicit_rewards, log_ratios, mixture_reward
from mixdpo.objective.metrics import objective_metrics
from mixdpo.objective.mix_weights import robbins_monro_step_size, robbins_monro_update
from mixdpo.objective.mixture import gate_log_weights, log_posterior, mbt_log_likelihood
from mixdpo.objective.mstep import (
    LossParts,
    em_loss,
    gate_entropy,
    load_balance_penalty,
    marginal_loss,
    regulariser,
)
from mixdpo.objective.preference import LOSS_TYPES, preference_loglik

__all__ = [
    "ESTEP_MODES",
    "LOSS_TYPES",
    "OBJECTIVES",
    "ElboTerms",
    "LossParts",
    "ObjectiveConfig",
    "ObjectiveOutput",
    "anneal_temperature",
    "elbo_terms",
    "em_loss",
    "expert_margins",
    "gate_entropy",
    "gate_log_weights",
    "gumbel_noise",
    "implicit_rewards",
    "load_balance_penalty",
    "log_posterior",
    "log_ratios",
    "marginal_loss",
    "mbt_log_likelihood",
    "mix_dpo_objective",
    "mixture_reward",
    "objective_metrics",
    "preference_loglik",
    "regulariser",
    "responsibilities",
    "robbins_monro_step_size",
    "robbins_monro_update",
]
