"""What a mixture policy is made of: the settings that build it and that are saved next to its weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mixdpo.errors import ConfigError
from mixdpo.experts import BACKENDS, GATE_FEATURES
from mixdpo.gating import GATE_KINDS

DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class PolicyConfig:
    """Settings of a :class:`~mixdpo.policy.MixturePolicy`.

    Attributes:
        model: model spec of the base / expert checkpoint (``random:llama-tiny``, ``builtin:smollm2-135m``,
            a path, a Hub id; see ``mixdpo.models.describe_spec``).
        num_experts: K >= 1 (K = 1 is plain DPO).
        backend: ``lora``, ``heads`` or ``independent``.
        backend_options: backend settings, e.g. ``{"r": 8, "alpha": 16}`` (lora),
            ``{"num_expert_layers": 2}`` (heads), ``{"per_expert_references": true}`` (independent); all take
            ``init_noise`` (symmetry breaking, 0 = off) and ``average_logps``.
        gate: ``global`` (Mix-DPO), ``prompt``, ``user`` or ``prompt+user`` (MoE-DPO).
        gate_options: e.g. ``{"hidden_dim": 64}`` (prompt), ``{"user_dropout": 0.1}`` (user),
            ``{"global_mode": "closed_form"}`` (global).
        beta: the DPO beta; implicit rewards are beta * (log pi_k - log pi_ref).
        gate_temperature: temperature of the gate softmax.
        gate_features: what a prompt gate reads, mean-pooled over the prompt: ``last`` (the reference's
            final hidden state) or ``embeddings`` (its token embeddings); see
            :func:`mixdpo.experts.pooled_prompt_features`.
        top_k: at inference, route among the top-k experts only (None = all).
        dtype: weights dtype, ``float32`` (default), ``bfloat16`` or ``float16``.
        seed: seeds random base models, the symmetry-breaking noise and the gate's random initial weights.
        reference_model: optional spec of a separate reference model (default: the base itself).
    """

    model: str = "random:llama-tiny"
    num_experts: int = 2
    backend: str = "lora"
    backend_options: dict[str, Any] = field(default_factory=dict)
    gate: str = "global"
    gate_options: dict[str, Any] = field(default_factory=dict)
    beta: float = 0.1
    gate_temperature: float = 1.0
    gate_features: str = "last"
    top_k: int | None = None
    dtype: str = "float32"
    seed: int = 0
    reference_model: str | None = None

    def __post_init__(self) -> None:
        if self.num_experts < 1:
            raise ConfigError("num_experts", f"must be >= 1, got {self.num_experts}")
        if self.backend not in BACKENDS:
            raise ConfigError("backend", f"got {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        if self.gate not in GATE_KINDS:
            raise ConfigError("gate", f"got {self.gate!r}; choose one of {', '.join(GATE_KINDS)}")
        if self.dtype not in DTYPES:
            raise ConfigError("dtype", f"got {self.dtype!r}; choose one of {', '.join(DTYPES)}")
        if not self.beta > 0:
            raise ConfigError("beta", f"must be > 0, got {self.beta}")
        if not self.gate_temperature > 0:
            raise ConfigError("gate_temperature", f"must be > 0, got {self.gate_temperature}")
        if self.gate_features not in GATE_FEATURES:
            raise ConfigError(
                "gate_features", f"got {self.gate_features!r}; choose one of {', '.join(GATE_FEATURES)}"
            )
        if self.top_k is not None and not 1 <= self.top_k <= self.num_experts:
            raise ConfigError(
                "top_k", f"must be between 1 and num_experts={self.num_experts}, got {self.top_k}"
            )
        if self.reference_model is not None and self.backend == "heads":
            raise ConfigError("reference_model", "the 'heads' backend uses the base itself as the reference")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicyConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(unknown[0], f"unknown policy option; known options: {', '.join(sorted(known))}")
        # policies saved before gate_features existed read the final hidden state, whatever the default is
        return cls(**{"gate_features": "last", **data})
