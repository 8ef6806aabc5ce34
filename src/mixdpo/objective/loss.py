"""One stochastic-EM step's objective, end to end: log-probs and gate logits in, loss and tensors out.

This composes the formulas of the other modules in DESIGN.md's order:

    D = beta (s+ - s-)                  margins.expert_margins          [B, K]
    l = loglik(D)                       preference.preference_loglik    [B, K]
    log w = log_softmax(gate / T_gate)  mixture.gate_log_weights        [B, K]
    log p = logsumexp(log w + l)        mixture.mbt_log_likelihood      [B]
    q = E-step(log w, l), detached      estep.responsibilities          [B, K]
    L = L_em(q) or L_marginal           mstep.em_loss / marginal_loss   scalar

With K = 1 every variant reduces to single-model DPO: log w = 0, q = 1, L = mean DPO loss.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch

from mixdpo.errors import ConfigError
from mixdpo.objective.elbo import ElboTerms, elbo_terms
from mixdpo.objective.estep import ESTEP_MODES, responsibilities
from mixdpo.objective.margins import expert_margins, implicit_rewards
from mixdpo.objective.mixture import gate_log_weights, mbt_log_likelihood
from mixdpo.objective.mstep import LossParts, em_loss, marginal_loss
from mixdpo.objective.preference import LOSS_TYPES, preference_loglik

OBJECTIVES: tuple[str, ...] = ("em", "marginal")


@dataclass(frozen=True)
class ObjectiveConfig:
    """Options of the Mix/MoE-DPO objective; validated on construction.

    Attributes:
        beta: inverse temperature of the implicit reward, > 0 (DPO's beta).
        loss_type: per-expert pair loss: ``sigmoid`` (DPO), ``robust``, ``ipo`` or ``hinge``.
        label_smoothing: assumed label-flip rate in [0, 0.5) for ``sigmoid`` (cDPO) and ``robust``.
        objective: ``em`` (responsibility-weighted M-step loss) or ``marginal`` (-log p directly).
        estep: responsibilities: ``soft`` (exact posterior), ``hard``, ``tempered`` or ``gumbel``.
        estep_temperature: T of ``tempered`` / tau of ``gumbel`` (> 0); a schedule may override it per step.
        straight_through: ``gumbel`` only: use the one-hot sample (an exact draw from the posterior).
        gate_loss_weight: lambda_gate >= 0, weight of the gate's cross-entropy in the ``em`` loss.
        gate_temperature: temperature of the gate softmax (> 0).
        load_balance_weight: lambda_lb >= 0 of KL(mean routing || uniform); 0 = off.
        gate_entropy_weight: lambda_ent of the mean per-pair gate entropy (> 0 sharpens, < 0 smooths);
            0 = off.
        estep_prior_weight: a in [0, 1], the gate's weight in the ``em`` E-step (q proportional to
            w^a exp(l)); 1 = the posterior; a schedule ramps it after the warm-up.
    """

    beta: float = 0.1
    loss_type: str = "sigmoid"
    label_smoothing: float = 0.0
    objective: str = "em"
    estep: str = "soft"
    estep_temperature: float = 1.0
    straight_through: bool = False
    gate_loss_weight: float = 1.0
    gate_temperature: float = 1.0
    load_balance_weight: float = 0.0
    gate_entropy_weight: float = 0.0
    estep_prior_weight: float = 1.0

    def __post_init__(self) -> None:
        def choice(name: str, options: tuple[str, ...]) -> None:
            value = getattr(self, name)
            if value not in options:
                raise ConfigError(name, f"got {value!r}; choose one of: {', '.join(options)}")

        choice("loss_type", LOSS_TYPES)
        choice("objective", OBJECTIVES)
        choice("estep", ESTEP_MODES)
        if not self.beta > 0:
            raise ConfigError("beta", f"must be > 0, got {self.beta}; typical values are 0.01-0.5")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ConfigError("label_smoothing", f"must be in [0, 0.5), got {self.label_smoothing}")
        if self.label_smoothing > 0 and self.loss_type not in ("sigmoid", "robust"):
            raise ConfigError(
                "label_smoothing",
                f"only applies to loss_type sigmoid or robust, not {self.loss_type}; set it to 0",
            )
        for name in ("estep_temperature", "gate_temperature"):
            if not getattr(self, name) > 0:
                raise ConfigError(name, f"must be > 0, got {getattr(self, name)}")
        for name in ("gate_loss_weight", "load_balance_weight"):
            if not getattr(self, name) >= 0:
                raise ConfigError(name, f"must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.estep_prior_weight <= 1.0:
            raise ConfigError("estep_prior_weight", f"must be in [0, 1], got {self.estep_prior_weight}")
        if self.straight_through and self.estep != "gumbel":
            raise ConfigError("straight_through", f"only applies to estep 'gumbel', not {self.estep!r}")
        if self.objective == "marginal" and self.estep != "soft":
            raise ConfigError(
                "estep",
                "the 'marginal' objective uses no sampled responsibilities; set estep to 'soft' "
                "or objective to 'em'",
            )

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Names of all options, in declaration order."""
        return tuple(f.name for f in fields(cls))

    def to_dict(self) -> dict[str, object]:
        """Plain dict of the options (JSON-serialisable)."""
        return asdict(self)


@dataclass(frozen=True)
class ObjectiveOutput:
    """Everything one step computes; tensors are [B, K] unless noted.

    Attributes:
        loss: scalar loss and its parts.
        margins: D_ik. loglik: l_ik. log_weights: log w_ik. q: responsibilities (detached).
        log_likelihood: [B] log p_i. elbo: [B] ELBO terms at ``q``.
        chosen_rewards, rejected_rewards: r_k(x_i, y_i+/-) = beta s_k (detached).
        chosen_logps, rejected_logps: the policy log-probs that went in (detached).
    """

    loss: LossParts
    margins: torch.Tensor
    loglik: torch.Tensor
    log_weights: torch.Tensor
    log_likelihood: torch.Tensor
    q: torch.Tensor
    elbo: ElboTerms
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor
    chosen_logps: torch.Tensor
    rejected_logps: torch.Tensor


def mix_dpo_objective(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    gate_logits: torch.Tensor,
    config: ObjectiveConfig,
    *,
    estep_temperature: float | None = None,
    generator: torch.Generator | None = None,
) -> ObjectiveOutput:
    """E-step then M-step loss for one minibatch.

    Args:
        policy_chosen_logps, policy_rejected_logps: [B, K] log pi_k(y+/- | x) summed over completion tokens.
        ref_chosen_logps, ref_rejected_logps: [B, K] per-expert or [B] / [B, 1] shared reference log-probs.
        gate_logits: [B, K] (MoE-DPO) or [K] (Mix-DPO global logits).
        config: the objective's options.
        estep_temperature: overrides ``config.estep_temperature`` (for annealing schedules).
        generator: seeds the ``gumbel`` E-step.

    Returns:
        :class:`ObjectiveOutput`; ``output.loss.total`` is what to backpropagate.
    """
    batch, k = policy_chosen_logps.shape
    margins = expert_margins(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, config.beta
    )
    loglik = preference_loglik(margins, config.beta, config.loss_type, config.label_smoothing)
    log_w = gate_log_weights(gate_logits, batch_size=batch, temperature=config.gate_temperature)
    if log_w.shape[-1] != k:
        raise ValueError(f"the gate gives {log_w.shape[-1]} experts but the policy log-probs have K = {k}")
    log_p = mbt_log_likelihood(log_w, loglik)
    if config.objective == "em":
        q = responsibilities(
            log_w,
            loglik,
            mode=config.estep,
            temperature=config.estep_temperature if estep_temperature is None else estep_temperature,
            straight_through=config.straight_through,
            generator=generator,
            prior_weight=config.estep_prior_weight,
        )
        loss = em_loss(
            q,
            log_w,
            loglik,
            gate_loss_weight=config.gate_loss_weight,
            load_balance_weight=config.load_balance_weight,
            gate_entropy_weight=config.gate_entropy_weight,
        )
    else:
        q = responsibilities(log_w, loglik, mode="soft")
        loss = marginal_loss(log_w, loglik, config.load_balance_weight, config.gate_entropy_weight)
    with torch.no_grad():
        elbo = elbo_terms(q, log_w.detach(), loglik.detach())
        chosen_rewards = implicit_rewards(
            policy_chosen_logps.detach(), ref_chosen_logps.detach(), config.beta
        )
        rejected_rewards = implicit_rewards(
            policy_rejected_logps.detach(), ref_rejected_logps.detach(), config.beta
        )
    return ObjectiveOutput(
        loss=loss,
        margins=margins,
        loglik=loglik,
        log_weights=log_w,
        log_likelihood=log_p,
        q=q,
        elbo=elbo,
        chosen_rewards=chosen_rewards,
        rejected_rewards=rejected_rewards,
        chosen_logps=policy_chosen_logps.detach(),
        rejected_logps=policy_rejected_logps.detach(),
    )
