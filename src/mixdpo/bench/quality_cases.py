"""What ``mixdpo bench quality`` runs: (task, method, model, seed) cases, the training budget, and the tiers.

Methods, all with the same LoRA experts, data, steps and learning rate:

- ``dpo``: plain DPO, one policy (K = 1);
- ``mix-dpo``: K experts (K = the task's number of hidden groups) and Mix-DPO's global weights;
- ``moe-dpo``: K experts and the task's input-dependent gate (``user`` for ``personas``, ``prompt``
  otherwise).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from mixdpo.errors import ConfigError

METHODS = ("dpo", "mix-dpo", "moe-dpo")
TASKS = ("multi-reward", "cross-domain", "personas")
MOE_GATE = {"personas": "user", "cross-domain": "prompt", "multi-reward": "prompt"}


@dataclass(frozen=True)
class QualityCase:
    """One training run of the benchmark."""

    task: str
    method: str
    model: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.task} / {self.method} / {self.model} / seed {self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class QualitySettings:
    """The budget every case shares, and how much of each task is used.

    Attributes:
        max_steps, batch, learning_rate, beta, lora_r: training (the same for every method).
        random_learning_rate: the learning rate for ``random:`` models, which need a larger one.
        max_length, random_max_length: tokens per sequence for subword and for byte-level (``random:``)
            tokenizers; long enough that no pair of the tasks is left out.
        task_sizes: per-task size overrides (see ``mixdpo.tasks.task_sizes``); empty = the defaults.
        generation_prompts: held-out prompts generated from per source (0 = no generation metrics).
        max_new_tokens: generation length.
    """

    max_steps: int = 60
    batch: int = 8
    learning_rate: float = 2e-3
    random_learning_rate: float = 3e-3
    beta: float = 1.0
    lora_r: int = 8
    estep_warmup_steps: int = 10
    max_length: int = 160
    # random: models read bytes (~5 per SmolLM2 token): the same texts need ~3x the sequence length
    random_max_length: int = 448
    task_sizes: dict[str, dict[str, int]] = field(default_factory=dict)
    generation_prompts: int = 24
    max_new_tokens: int = 40

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch", "lora_r", "max_new_tokens", "max_length", "random_max_length"):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"must be >= 1, got {getattr(self, name)}")
        if self.generation_prompts < 0:
            raise ConfigError("generation_prompts", f"must be >= 0, got {self.generation_prompts}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class QualityTier:
    """A named set of cases with its settings."""

    settings: QualitySettings
    cases: list[QualityCase]
    models: tuple[str, ...]
    seeds: tuple[int, ...]


# Small task sizes so that the fast tier trains in seconds per case.
_FAST_SIZES = {
    "multi-reward": {"train_prompts": 12, "eval_prompts": 8},
    "cross-domain": {"train_pairs": 32, "eval_pairs": 16},
    "personas": {"train_pairs": 30, "eval_pairs": 15, "new_user_pairs": 0},
}


def tier(name: str) -> QualityTier:
    """``fast``: a 0.1M-parameter random Llama, one seed, small tasks, 8 steps: a few minutes on 2 CPU
    cores (the CI test; it checks that everything runs, its numbers mean little). ``full``: ~0.8M and
    ~18M random Llamas and SmolLM2-135M, three seeds, the tasks' default
    sizes."""
    if name == "fast":
        settings = QualitySettings(
            max_steps=8, batch=4, task_sizes=_FAST_SIZES, generation_prompts=4, max_new_tokens=12
        )
        models, seeds = ("random:llama-tiny",), (0,)
    elif name == "full":
        settings = QualitySettings()
        models, seeds = ("random:llama-1m", "random:llama-20m", "builtin:smollm2-135m"), (0, 1, 2)
    else:
        raise ConfigError("tier", f"got {name!r}; choose fast or full")
    cases = [
        QualityCase(task, method, model, seed)
        for model in models
        for task in TASKS
        for seed in seeds
        for method in METHODS
    ]
    return QualityTier(settings, cases, models, seeds)


def select(
    chosen: QualityTier,
    *,
    tasks: list[str] | None = None,
    methods: list[str] | None = None,
    models: list[str] | None = None,
    seeds: list[int] | None = None,
    **overrides: Any,
) -> QualityTier:
    """The tier restricted to the given tasks / methods / models / seeds (None: all of the tier's; models
    and seeds may also be ones the tier does not have) with settings ``overrides`` (None values ignored)."""
    for label, values, known in (("tasks", tasks, TASKS), ("methods", methods, METHODS)):
        unknown = sorted(set(values or ()) - set(known))
        if unknown:
            raise ConfigError(label, f"unknown {unknown[0]!r}; choose from {', '.join(known)}")
    models_ = tuple(models) if models else chosen.models
    seeds_ = tuple(seeds) if seeds is not None and len(seeds) else chosen.seeds
    cases = [
        QualityCase(task, method, model, seed)
        for model in models_
        for task in (tasks or TASKS)
        for seed in seeds_
        for method in (methods or METHODS)
    ]
    known = set(QualitySettings.__dataclass_fields__)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(unknown[0], f"not a quality-benchmark setting; known: {', '.join(sorted(known))}")
    settings = replace(chosen.settings, **{k: v for k, v in overrides.items() if v is not None})
    return QualityTier(settings, cases, models_, seeds_)
