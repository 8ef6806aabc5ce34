"""Create the expert backend and the gate a :class:`PolicyConfig` describes, on freshly loaded models."""

from __future__ import annotations

from typing import Any

import torch

from mixdpo.errors import ConfigError
from mixdpo.experts import ExpertBackend, HeadsExperts, IndependentExperts, LoraExperts
from mixdpo.gating import PROMPT_GATE_KINDS, Gate, build_gate
from mixdpo.models import LoadedModel, load_model_and_tokenizer
from mixdpo.policy.config import PolicyConfig

_BACKEND_OPTIONS = {
    "lora": {"r", "alpha", "dropout", "target_modules", "top_layers", "init_noise", "average_logps"},
    "heads": {"num_expert_layers", "expert_lm_head", "trunk_trainable", "init_noise", "average_logps"},
    "independent": {"init_noise", "per_expert_references", "average_logps"},
}
_GATE_OPTIONS = {"hidden_dim", "dropout", "user_dropout", "global_mode"}


def torch_dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def load_base(config: PolicyConfig) -> LoadedModel:
    return load_model_and_tokenizer(config.model, dtype=torch_dtype(config.dtype), seed=config.seed)


def load_reference(config: PolicyConfig) -> LoadedModel | None:
    """The separate reference model of ``config.reference_model``, or None (the backend's default)."""
    if config.reference_model is None:
        return None
    return load_model_and_tokenizer(config.reference_model, dtype=torch_dtype(config.dtype), seed=config.seed)


def _check_options(given: dict[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise ConfigError(
            f"{what}.{unknown[0]}", f"unknown option; {what} accepts: {', '.join(sorted(allowed))}"
        )


def build_backend(config: PolicyConfig, base: LoadedModel) -> ExpertBackend:
    """A fresh backend with K symmetry-broken experts on ``base``; the same config always gives the same
    initial experts (PEFT draws LoRA's A matrices from the global RNG: it is seeded here with
    ``config.seed``, and the caller's RNG state is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return _build_backend(config, base)


def _build_backend(config: PolicyConfig, base: LoadedModel) -> ExpertBackend:
    options = dict(config.backend_options)
    _check_options(options, _BACKEND_OPTIONS[config.backend], "backend_options")
    reference = None
    if config.reference_model is not None:
        reference = load_model_and_tokenizer(
            config.reference_model, dtype=torch_dtype(config.dtype), seed=config.seed
        )
    if config.backend == "lora":
        return LoraExperts(
            base.model,
            config.num_experts,
            seed=config.seed,
            reference_model=reference.model if reference else None,
            base_identity=base.identity,
            reference_identity=reference.identity if reference else None,
            **options,
        )
    if config.backend == "heads":
        return HeadsExperts(
            base.model, config.num_experts, seed=config.seed, base_identity=base.identity, **options
        )
    per_expert = options.pop("per_expert_references", False)
    backend = IndependentExperts.from_checkpoint(
        base.model,
        config.num_experts,
        identity=base.identity,
        seed=config.seed,
        per_expert_references=per_expert,
        **options,
    )
    if reference is not None:
        if per_expert:
            raise ConfigError(
                "reference_model", "give either a reference_model or per_expert_references, not both"
            )
        backend.references = torch.nn.ModuleList([reference.model.requires_grad_(False).eval()])
        backend.reference_identities = [reference.identity]
    return backend


def build_policy_gate(
    config: PolicyConfig, backend: ExpertBackend, *, num_users: int = 0, num_user_features: int = 0
) -> Gate:
    """A fresh gate (uniform routing) sized for ``backend``'s prompt features and the known users."""
    options = dict(config.gate_options)
    _check_options(options, _GATE_OPTIONS, "gate_options")
    feature_dim = backend.feature_dim if config.gate in PROMPT_GATE_KINDS else None
    # The prompt gate's hidden layer starts random: draw it from the config's seed, not from whatever the
    # global RNG holds by now (that depends on what ran first: it differed between a 1-process run and
    # each process of a torchrun launch, so their gates started apart).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return build_gate(
            config.gate,
            config.num_experts,
            feature_dim=feature_dim,
            num_users=num_users,
            num_user_features=num_user_features,
            **options,
        )
