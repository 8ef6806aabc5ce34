"""Build a gate from its kind and sizes, and rebuild a saved gate from its config."""

from __future__ import annotations

from typing import Any

from mixdpo.gating.base import Gate
from mixdpo.gating.combined import PromptUserGate
from mixdpo.gating.global_gate import GlobalGate
from mixdpo.gating.prompt_gate import PromptGate
from mixdpo.gating.user_gate import UserGate

GATE_KINDS = ("global", "prompt", "user", "prompt+user")
# the kinds that read the prompt features (and need feature_dim)
PROMPT_GATE_KINDS = ("prompt", "prompt+user")


def build_gate(
    kind: str,
    num_experts: int,
    *,
    feature_dim: int | None = None,
    num_users: int = 0,
    num_user_features: int = 0,
    hidden_dim: int = 64,
    dropout: float = 0.0,
    user_dropout: float = 0.1,
    global_mode: str = "learned",
) -> Gate:
    """Create a fresh gate.

    Args:
        kind: ``global`` (Mix-DPO), ``prompt``, ``user`` or ``prompt+user`` (MoE-DPO).
        num_experts: K.
        feature_dim: H of the prompt features (prompt gates).
        num_users, num_user_features, user_dropout: user gates (see :class:`UserGate`).
        hidden_dim, dropout: prompt gate MLP.
        global_mode: ``learned`` or ``closed_form`` (global gate).
    """
    if kind == "global":
        return GlobalGate(num_experts, mode=global_mode)
    if kind in PROMPT_GATE_KINDS and feature_dim is None:
        raise ValueError(f"a {kind!r} gate needs feature_dim (the width of the prompt features)")
    if kind == "prompt":
        return PromptGate(num_experts, feature_dim, hidden_dim, dropout)  # type: ignore[arg-type]
    if kind == "user":
        return UserGate(num_experts, num_users, num_user_features, user_dropout)
    if kind == "prompt+user":
        return PromptUserGate(
            PromptGate(num_experts, feature_dim, hidden_dim, dropout),  # type: ignore[arg-type]
            UserGate(num_experts, num_users, num_user_features, user_dropout),
        )
    raise ValueError(f"unknown gate kind {kind!r}; choose one of {', '.join(GATE_KINDS)}")


def gate_from_config(config: dict[str, Any]) -> Gate:
    """Rebuild a gate (untrained weights) from :meth:`Gate.config`; load its state dict afterwards."""
    kind = config["kind"]
    if kind == "prompt+user":
        return PromptUserGate(PromptGate(**_args(config["prompt"])), UserGate(**_args(config["user"])))
    classes: dict[str, type[Gate]] = {"global": GlobalGate, "prompt": PromptGate, "user": UserGate}
    if kind not in classes:
        raise ValueError(
            f"unknown gate kind {kind!r} in a saved config; choose one of {', '.join(GATE_KINDS)}"
        )
    return classes[kind](**_args(config))


def _args(config: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in config.items() if key != "kind"}
