"""Which objective settings apply at a given training step: E-step warm-up, temperature annealing, and the
gate warm-up.

    steps [0, estep_warmup_steps)   hard (argmax) or gumbel (one-hot sample) responsibilities:
                                    classification EM separates near-identical experts quickly
    steps [0, gate_warmup_steps)    gate loss weight and regularisers 0: the gate stays untrained while
                                    the experts specialise
    prior ramp (prior_ramp_steps N) the gate's weight a in the E-step (q proportional to w^a exp(l)) is 0
                                    through the E-step warm-up (steps < W) and then rises linearly,
                                    a_t = min((t - W + 1) / N, 1) (N = 1: the posterior right after it).
                                    While a = 0 the experts' likelihoods alone assign pairs, so a gate
                                    trained during the warm-up learns from them without biasing them.
                                    N = 0: a = 1 throughout
    afterwards                      the configured E-step; tempered / gumbel temperatures follow
                                    anneal_temperature from estep_temperature to estep_final_temperature
                                    over estep_anneal_steps (default: the rest of the run)

With one expert every E-step gives q = 1, so the schedule changes nothing and K = 1 is plain DPO.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from mixdpo.objective import ObjectiveConfig, anneal_temperature


@dataclass(frozen=True)
class StepSettings:
    """The objective config and E-step temperature to use at one step, and the phase name for logs."""

    objective: ObjectiveConfig
    temperature: float
    phase: str


class ObjectiveSchedule:
    """Objective settings as a function of the optimizer step.

    Args:
        base: the main-phase objective config.
        num_experts: K (warm-ups are skipped for K = 1).
        total_steps: planned optimizer steps of the run.
        estep_warmup_steps, estep_warmup_mode: hard-responsibility warm-up (``hard`` or ``gumbel``).
        gate_warmup_steps: steps without gate training.
        prior_ramp_steps: N >= 1: the gate's weight in the E-step is 0 during the E-step warm-up and
            reaches 1 N steps after it; 0 = the posterior throughout.
        final_temperature, anneal_steps, schedule: temperature annealing of tempered/gumbel E-steps.
    """

    def __init__(
        self,
        base: ObjectiveConfig,
        *,
        num_experts: int,
        total_steps: int,
        estep_warmup_steps: int = 0,
        estep_warmup_mode: str = "hard",
        gate_warmup_steps: int = 0,
        prior_ramp_steps: int = 0,
        final_temperature: float | None = None,
        anneal_steps: int | None = None,
        schedule: str = "exponential",
    ):
        self.base = base
        multi = num_experts > 1
        # The marginal objective has no E-step to warm up.
        self.estep_warmup_steps = estep_warmup_steps if multi and base.objective == "em" else 0
        self.gate_warmup_steps = gate_warmup_steps if multi else 0
        self.prior_ramp_steps = prior_ramp_steps if multi and base.objective == "em" else 0
        # (the marginal objective refuses a sampled E-step: build the warm-up config only when it is used)
        self.warmup = (
            replace(
                base,
                estep=estep_warmup_mode,
                straight_through=estep_warmup_mode == "gumbel",
                estep_temperature=1.0,
            )
            if self.estep_warmup_steps
            else base
        )
        self.final_temperature = base.estep_temperature if final_temperature is None else final_temperature
        remaining = max(total_steps - self.estep_warmup_steps, 1)
        self.anneal_steps = remaining if anneal_steps is None else anneal_steps
        self.schedule = schedule if final_temperature is not None else "constant"

    def at(self, step: int) -> StepSettings:
        """Settings for optimizer step ``step`` (0-based)."""
        if step < self.estep_warmup_steps:
            config, temperature, phase = self.warmup, 1.0, f"warmup-{self.warmup.estep}"
        else:
            config, phase = self.base, "main"
            temperature = anneal_temperature(
                step - self.estep_warmup_steps,
                self.anneal_steps,
                self.base.estep_temperature,
                self.final_temperature,
                self.schedule,
            )
        if self.prior_ramp_steps:
            since = step - self.estep_warmup_steps + 1
            prior_weight = min(max(since, 0) / self.prior_ramp_steps, 1.0)
            if prior_weight < 1.0:
                config = replace(config, estep_prior_weight=prior_weight)
                phase += "+prior-ramp"
        if step < self.gate_warmup_steps:
            config = replace(config, gate_loss_weight=0.0, load_balance_weight=0.0, gate_entropy_weight=0.0)
            phase += "+gate-frozen"
        return StepSettings(config, temperature, phase)
