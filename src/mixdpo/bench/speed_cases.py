"""What ``mixdpo bench speed`` measures: the cases (library, method, K, cached references) and the tiers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from mixdpo.errors import ConfigError

MIXDPO_BACKENDS = ("lora", "heads", "independent")
TRL_METHODS = ("full", "lora")


@dataclass(frozen=True)
class SpeedCase:
    """One measured configuration.

    Attributes:
        library: ``trl`` (TRL's ``DPOTrainer``) or ``mixdpo`` (``MixDPOTrainer``).
        method: trl: ``full`` (full fine-tuning) or ``lora``; mixdpo: the expert backend.
        experts: K (1 for TRL).
        cached_reference: reference log-probs precomputed before training (both libraries support it).
        batch, length: pairs per step and tokens per sequence; None = the settings' values.
        checkpointing: activation checkpointing (recompute block activations in backward).
        sequential: mixdpo ``sequential_experts`` (one expert's forward/backward at a time).
    """

    library: str
    method: str
    experts: int = 1
    cached_reference: bool = True
    batch: int | None = None
    length: int | None = None
    checkpointing: bool = False
    sequential: bool = False

    @property
    def name(self) -> str:
        label = (
            f"TRL DPOTrainer {self.method}"
            if self.library == "trl"
            else f"mixdpo {self.method} K={self.experts}"
        )
        label += " (cached ref)" if self.cached_reference else " (live ref)"
        return (
            label
            + (" + act. ckpt" if self.checkpointing else "")
            + (" + sequential" if self.sequential else "")
        )

    @property
    def analytic_method(self) -> str:
        """The cost model of :func:`mixdpo.bench.work.analytic_step_flops` this case follows."""
        return "full" if self.method in ("full", "independent") else self.method

    def trl_counterpart(self) -> SpeedCase:
        """The TRL case doing the same job for K = 1 (LoRA for lora/heads, full fine-tuning otherwise)."""
        method = "full" if self.method in ("full", "independent") else "lora"
        return SpeedCase("trl", method, 1, self.cached_reference, self.batch, self.length, self.checkpointing)

    def with_experts(self, k: int) -> SpeedCase:
        return replace(self, experts=k)

    def k1_counterpart(self) -> SpeedCase:
        """The same method with K = 1, the same activation checkpointing, run jointly (one expert has
        nothing to run in sequence)."""
        return replace(self, experts=1, sequential=False)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SpeedSettings:
    """What every case shares: model, batch shape, step counts, threads, seeds and adapter sizes."""

    model: str = "random:llama-small"
    batch: int = 4
    length: int = 64
    steps: int = 3
    warmup: int = 1
    threads: int = 1
    seed: int = 0
    lora_r: int = 8
    heads_layers: int = 2
    precision: str = "fp32"
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        for name in ("batch", "length", "steps", "threads"):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"must be >= 1, got {getattr(self, name)}")
        if self.length < 4:
            raise ConfigError("length", f"must be >= 4 tokens (prompt + completion), got {self.length}")
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError("precision", f"got {self.precision!r}; choose fp32 or bf16")
        if self.warmup < 0:
            raise ConfigError("warmup", f"must be >= 0, got {self.warmup}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Tier:
    """A named set of cases with its settings."""

    settings: SpeedSettings
    cases: list[SpeedCase] = field(default_factory=list)


def _grid(experts: dict[str, tuple[int, ...]], caches: tuple[bool, ...]) -> list[SpeedCase]:
    cases = [SpeedCase("trl", m, 1, c) for c in caches for m in TRL_METHODS]
    for cached in caches:
        for backend in MIXDPO_BACKENDS:
            cases += [SpeedCase("mixdpo", backend, k, cached) for k in experts[backend]]
    return cases


def tier(name: str, **overrides: Any) -> Tier:
    """``fast``: a 3M-parameter random Llama (minutes on 2 CPU cores); ``full``: SmolLM2-135M, plus the
    throughput cases at batch 8 x 256 tokens. ``overrides`` replace settings fields."""
    # Live references cost the same for every K (one reference pass): they are measured at K = 1, against
    # TRL. Activation checkpointing is measured for lora K = 1 and K = 4 (the memory target).
    checkpointed = [SpeedCase("trl", "lora", 1, True, checkpointing=True)]
    checkpointed += [SpeedCase("mixdpo", "lora", k, True, checkpointing=True) for k in (1, 4)]
    # sequential_experts: the other way to keep lora K = 4 memory near K = 1 (and independent's)
    checkpointed += [SpeedCase("mixdpo", m, 4, True, sequential=True) for m in ("lora", "independent")]
    checkpointed += [SpeedCase("mixdpo", "lora", 4, True, checkpointing=True, sequential=True)]
    if name == "fast":
        settings = SpeedSettings(model="random:llama-small", batch=4, length=64, steps=3, warmup=1)
        cases = _grid(
            {"lora": (1, 2, 4, 8), "heads": (1, 2, 4, 8), "independent": (1, 2, 4, 8)}, (True, False)
        )
        cases = [c for c in cases if c.cached_reference or c.experts == 1] + checkpointed
    elif name == "full":
        settings = SpeedSettings(model="builtin:smollm2-135m", batch=4, length=128, steps=3, warmup=1)
        # independent K = 8 of a 135M model needs ~8 x 2.2 GB of weights, gradients and Adam moments: more
        # than a 24 GiB machine leaves once the rest runs; it is measured up to K = 4 here.
        cases = _grid({"lora": (1, 2, 4, 8), "heads": (1, 2, 4, 8), "independent": (1, 2, 4)}, (True, False))
        cases = [c for c in cases if c.cached_reference or c.experts == 1] + checkpointed
        cases += [
            SpeedCase("mixdpo", "lora", 1, True, batch=8, length=256),
            SpeedCase("mixdpo", "independent", 1, True, batch=8, length=256),
        ]
    else:
        raise ConfigError("tier", f"got {name!r}; choose fast or full")
    known = set(SpeedSettings.__dataclass_fields__)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(unknown[0], f"not a speed-benchmark setting; known: {', '.join(sorted(known))}")
    return Tier(replace(settings, **{k: v for k, v in overrides.items() if v is not None}), cases)


def select(
    cases: list[SpeedCase],
    experts: set[int] | None = None,
    methods: set[str] | None = None,
    reference: str = "both",
    large: bool = True,
) -> list[SpeedCase]:
    """Cases with K in ``experts``, method in ``methods`` (None = all), ``reference`` ``cached`` / ``live``
    / ``both``, and (``large=False``) without the cases of their own batch shape. TRL cases are kept
    whatever ``experts`` and ``methods`` say (every ratio refers to them)."""
    if reference not in ("cached", "live", "both"):
        raise ConfigError("reference", f"got {reference!r}; choose cached, live or both")
    chosen = []
    for c in cases:
        if reference != "both" and c.cached_reference != (reference == "cached"):
            continue
        if not large and (c.batch is not None or c.length is not None):
            continue
        if c.library == "trl" or (
            (experts is None or c.experts in experts) and (methods is None or c.method in methods)
        ):
            chosen.append(c)
    return chosen
