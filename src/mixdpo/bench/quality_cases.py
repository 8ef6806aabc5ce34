"""What ``mixdpo bench quality`` runs: (task, method, model, seed) cases, the training budget, and the tiers.

Methods, all with the same LoRA experts, data, steps and learning rate (per model, see
:meth:`QualitySettings.learning_rate_for`):

- ``dpo``: plain DPO, one policy (K = 1);
- ``mix-dpo``: K experts (K = the task's number of hidden groups) and Mix-DPO's global weights;
- ``moe-dpo``: K experts and the task's input-dependent gate (``user`` for ``personas``, ``prompt``
  otherwise).

The ``ablations`` suite trains MoE-DPO on ``cross-domain`` with one thing changed per case
(:data:`ABLATIONS`): the number of experts, the E-step, the expert backend, or symmetry breaking switched off.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from mixdpo.errors import ConfigError

METHODS = ("dpo", "mix-dpo", "moe-dpo")
# single-policy baselines (mixdpo.bench.quality_baselines); cond-dpo needs an observable condition
BASELINE_METHODS = ("cond-dpo", "oracle-dpo", "trl-dpo", "wide-dpo")
ALL_METHODS = METHODS + BASELINE_METHODS
MIXTURE_METHODS = ("mix-dpo", "moe-dpo")
TASKS = ("personas", "cross-domain", "multi-reward")  # the headline targets first
# reviews-users: the word-list task of ``mixdpo bench regimes``
MOE_GATE = {"personas": "user", "cross-domain": "prompt", "multi-reward": "prompt", "reviews-users": "user"}
SUITES = ("main", "ablations")

# Ablations of MoE-DPO on cross-domain, where the full tier's mixtures and oracle are far from chance (on
# personas even the label-trained oracle is at 50-62%: every ablation would tie). Each changes one thing of
# the base case (K = the task's 2 hidden groups, soft E-step, LoRA experts, symmetry breaking on).
# "pretrained": options only for pretrained models: full-parameter backends get the learning rates that full
# fine-tuning needs (LoRA's would wreck a pretrained model) and heads copies the 4 blocks LoRA adapts there;
# random models keep their defaults.
ABLATION_TASK = "cross-domain"
ABLATIONS: dict[str, dict[str, Any]] = {
    "base": {},
    "K=1": {"num_experts": 1},
    "K=4": {"num_experts": 4},
    "K=8": {"num_experts": 8},
    "hard E-step": {"estep": "hard"},
    "gumbel E-step": {"estep": "gumbel"},
    "heads backend": {"backend": "heads", "pretrained": {"heads_num_layers": 4, "learning_rate": 1e-4}},
    "independent backend": {"backend": "independent", "pretrained": {"learning_rate": 1e-5}},
    "no symmetry breaking": {"init_noise": 0.0, "estep_warmup_steps": 0},
    "embedding gate": {"gate_features": "embeddings"},
}


@dataclass(frozen=True)
class QualityCase:
    """One training run of the benchmark."""

    task: str
    method: str
    model: str
    seed: int
    variant: str = ""  # an ABLATIONS key; "" = the method as the main suite trains it

    @property
    def name(self) -> str:
        variant = f" / {self.variant}" if self.variant else ""
        return f"{self.task} / {self.method}{variant} / {self.model} / seed {self.seed}"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if not self.variant:
            del out["variant"]  # main-suite rows keep the keys they had before ablations existed
        return out


@dataclass(frozen=True)
class QualitySettings:
    """The budget every case shares, and how much of each task is used.

    Attributes:
        max_steps, batch, learning_rate, beta, lora_r: training (the same for every method).
        gate_learning_rates: the gate's learning rate per gate kind (global, prompt, user).
        random_learning_rate: the learning rate for ``random:`` models, which need a larger one.
        model_learning_rates: model spec -> learning rate, overriding the two above for that model (a wider
            random model diverges at the small one's rate); only written to JSON when not empty, so the
            documents of tiers without overrides are unchanged.
        estep_warmup_steps: hard E-step warm-up steps (symmetry breaking) of every mixture.
        gate_warmups: gate kind -> ``MixDPOConfig`` warm-up options (``estep_warmup_steps``,
            ``gate_warmup_steps``) of every mixture with that gate, overriding ``estep_warmup_steps``;
            written to JSON only when not empty, like ``model_learning_rates``.
        max_length, random_max_length: tokens per sequence for subword and for byte-level (``random:``)
            tokenizers; long enough that no pair of the tasks is left out.
        task_sizes: per-task size overrides (see ``mixdpo.tasks.task_sizes``); empty = the defaults.
        generation_prompts: held-out prompts generated from per source (0 = no generation metrics).
        max_new_tokens: generation length.
    """

    max_steps: int = 40
    batch: int = 8
    learning_rate: float = 2e-3
    random_learning_rate: float = 3e-3
    model_learning_rates: dict[str, float] = field(default_factory=dict)
    beta: float = 1.0
    lora_r: int = 8
    estep_warmup_steps: int = 10
    gate_warmups: dict[str, dict[str, int]] = field(default_factory=dict)
    max_length: int = 160
    # random: models read bytes (~5 per SmolLM2 token): the same texts need ~3x the sequence length
    random_max_length: int = 448
    # per gate kind: a user gate is a table of per-user logits that must move far in a few dozen steps
    # (the demo's 0.3); a prompt gate is an MLP on prompt features
    gate_learning_rates: dict[str, float] = field(
        default_factory=lambda: {"global": 1e-3, "prompt": 3e-2, "user": 0.3}
    )
    task_sizes: dict[str, dict[str, int]] = field(default_factory=dict)
    generation_prompts: int = 16
    max_new_tokens: int = 32

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch", "lora_r", "max_new_tokens", "max_length", "random_max_length"):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"must be >= 1, got {getattr(self, name)}")
        if self.generation_prompts < 0:
            raise ConfigError("generation_prompts", f"must be >= 0, got {self.generation_prompts}")
        for model, rate in self.model_learning_rates.items():
            if not rate > 0:
                raise ConfigError("model_learning_rates", f"{model}: must be > 0, got {rate}")
        for gate, options in self.gate_warmups.items():
            for name, steps in options.items():
                if name not in ("estep_warmup_steps", "gate_warmup_steps"):
                    problem = f"{gate}: got {name!r}; set estep_warmup_steps and/or gate_warmup_steps"
                    raise ConfigError("gate_warmups", problem)
                if steps < 0:
                    raise ConfigError("gate_warmups", f"{gate}: {name} must be >= 0, got {steps}")

    def learning_rate_for(self, model: str) -> float:
        """The policy learning rate of every case on ``model`` (before an ablation's own)."""
        if model in self.model_learning_rates:
            return self.model_learning_rates[model]
        return self.random_learning_rate if model.startswith("random:") else self.learning_rate

    def warmups_for(self, gate: str) -> dict[str, int]:
        """The warm-up options of a mixture with ``gate`` (before an ablation's own)."""
        return {"estep_warmup_steps": self.estep_warmup_steps} | self.gate_warmups.get(gate, {})

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> QualitySettings:
        """The settings a document stored (:meth:`to_dict`); keys this version does not know are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in settings.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if not self.model_learning_rates:
            del out["model_learning_rates"]  # documents written before the field existed stay comparable
        if not self.gate_warmups:
            del out["gate_warmups"]
        return out


@dataclass(frozen=True)
class QualityTier:
    """A named set of cases with its settings."""

    settings: QualitySettings
    combos: list[tuple[str, str, str]]  # (task, method, variant), crossed with models and seeds
    models: tuple[str, ...]
    seeds: tuple[int, ...]
    suite: str = "main"

    @property
    def cases(self) -> list[QualityCase]:
        return [
            QualityCase(task, method, model, seed, variant)
            for model in self.models
            for seed in self.seeds  # a whole seed first: a partial run already covers every task
            for task, method, variant in self.combos
        ]


# The full tier trains 40 steps x 8 = 320 pairs: multi-reward's default 240 prompts (~700 pairs) would
# only add reference passes over pairs training never reaches, and its eval split is cut to match.
_FULL_SIZES = {"multi-reward": {"train_prompts": 120, "eval_prompts": 60}}
# Small task sizes so that the fast tier trains in seconds per case.
_FAST_SIZES = {
    "multi-reward": {"train_prompts": 12, "eval_prompts": 8},
    "cross-domain": {"train_pairs": 32, "eval_pairs": 16},
    "personas": {"train_pairs": 30, "eval_pairs": 15, "new_user_pairs": 0},
}


def applicable(task: str, method: str) -> bool:
    """Whether ``method`` has a case on ``task`` (conditioned DPO needs a user or a domain to show)."""
    return not (method == "cond-dpo" and task == "multi-reward")


def tier(name: str, suite: str = "main") -> QualityTier:
    """``fast``: a 0.1M-parameter random Llama, one seed, small tasks, 8 steps: a few minutes on 2 CPU
    cores (the CI test; it checks that everything runs, its numbers mean little). ``full``: ~0.8M and
    ~18M random Llamas and SmolLM2-135M, three seeds, the tasks' default sizes (multi-reward halved).

    ``suite="ablations"``: the :data:`ABLATIONS` of MoE-DPO on cross-domain, on the tier's largest model and
    first seed, without generation (they compare held-out accuracy, ARI and routing)."""
    if name == "fast":
        settings = QualitySettings(
            max_steps=8, batch=4, task_sizes=_FAST_SIZES, generation_prompts=4, max_new_tokens=12
        )
        models, seeds = ("random:llama-tiny",), (0,)
    elif name == "full":
        # The 17.5M random model diverges at the small one's 3e-3 (DPO loss 16-22) and swings at 1e-3
        # (loss 1.3-10.6 over 16 steps); at 3e-4 it stays below 5.3 and ends at 0.86 (plain DPO on
        # cross-domain, seed 0: python scripts/probe_learning_rate.py)
        # A prompt gate trained from step 10 gave one of SmolLM2's experts 100% before they differed
        # (cross-domain seed 2: 52.5%, ARI 0); 20 hard steps with the gate held back fix that but leave the
        # random models' gate too few steps (1M: 80.0% over 3 seeds, 87.1% with 10). 20 hard steps with the
        # gate trained from step 10 on the likelihoods' assignments (estep_prior_ramp_steps) serve both:
        # BENCHMARKS.md, the cross-domain bullet.
        settings = QualitySettings(
            task_sizes=_FULL_SIZES,
            model_learning_rates={"random:llama-20m": 3e-4},
            gate_warmups={"prompt": {"estep_warmup_steps": 20, "gate_warmup_steps": 10}},
        )
        models, seeds = ("random:llama-1m", "random:llama-20m", "builtin:smollm2-135m"), (0, 1, 2)
    else:
        raise ConfigError("tier", f"got {name!r}; choose fast or full")
    if suite == "main":
        combos = [(task, method, "") for task in TASKS for method in ALL_METHODS if applicable(task, method)]
    elif suite == "ablations":
        combos = [(ABLATION_TASK, "moe-dpo", variant) for variant in ABLATIONS]
        models, seeds = models[-1:], seeds[:1]
        settings = replace(settings, generation_prompts=0)
    else:
        raise ConfigError("suite", f"got {suite!r}; choose from {', '.join(SUITES)}")
    return QualityTier(settings, combos, models, seeds, suite)


def select(
    chosen: QualityTier,
    *,
    tasks: list[str] | None = None,
    methods: list[str] | None = None,
    variants: list[str] | None = None,
    models: list[str] | None = None,
    seeds: list[int] | None = None,
    **overrides: Any,
) -> QualityTier:
    """The tier restricted to the given tasks / methods / ablation variants (None: all of the tier's), on
    the given models and seeds (None: the tier's; others allowed), with settings ``overrides`` (None
    values ignored)."""
    for label, values, known in (
        ("tasks", tasks, TASKS), ("methods", methods, ALL_METHODS), ("variants", variants, tuple(ABLATIONS))
    ):  # fmt: skip
        unknown = sorted(set(values or ()) - set(known))
        if unknown:
            raise ConfigError(label, f"unknown {unknown[0]!r}; choose from {', '.join(known)}")
    if variants and chosen.suite != "ablations":
        raise ConfigError("variants", "only the ablations suite has variants (add --suite ablations)")
    combos = [
        (task, method, variant)
        for task, method, variant in chosen.combos
        if (not tasks or task in tasks)
        and (not methods or method in methods)
        and (not variants or variant in variants)
    ]
    models_ = tuple(models) if models else chosen.models
    seeds_ = tuple(seeds) if seeds is not None and len(seeds) else chosen.seeds
    known = set(QualitySettings.__dataclass_fields__)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(unknown[0], f"not a quality-benchmark setting; known: {', '.join(sorted(known))}")
    settings = replace(chosen.settings, **{k: v for k, v in overrides.items() if v is not None})
    return QualityTier(settings, combos, models_, seeds_, chosen.suite)
