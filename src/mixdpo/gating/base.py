"""What every gate takes and returns, and inference-time sparsification.

A gate maps a pair's context to K expert logits; ``log w = log_softmax(logits / T)`` (see
:func:`mixdpo.objective.gate_log_weights`). Mix-DPO's gate ignores the context and returns one global
vector [K]; MoE-DPO gates return [B, K].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class GateInputs:
    """The context a gate may read for a batch of B pairs.

    Attributes:
        batch_size: B.
        prompt_features: [B, H] features of the prompt (pooled hidden state of the frozen reference
            model by default), or None.
        user_ids: [B] long, row of the user table; ``mixdpo.batch.UNKNOWN_USER`` (-1) for unseen users.
        user_features: [B, F] float numeric user features, or None.
    """

    batch_size: int
    prompt_features: torch.Tensor | None = None
    user_ids: torch.Tensor | None = None
    user_features: torch.Tensor | None = None


class Gate(nn.Module):
    """Base class: ``forward(GateInputs) -> logits`` of shape [B, K] (or [K] for a global gate).

    Subclasses set ``kind`` and implement ``config()`` (JSON-serialisable constructor arguments) so that a
    saved gate can be rebuilt by :func:`mixdpo.gating.build_gate` without training code.
    """

    kind: str = "base"
    needs_prompt_features: bool = False
    needs_users: bool = False

    def __init__(self, num_experts: int):
        super().__init__()
        if num_experts < 1:
            raise ValueError(f"a gate needs at least one expert, got num_experts={num_experts}")
        self.num_experts = num_experts

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def forward(self, inputs: GateInputs) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def split_expert(self, src: int, dst: int) -> None:
        """Route to ``dst`` exactly as to ``src`` and halve both: w_dst = w_src = (old w_src) / 2 for every
        input (collapse recovery, together with copying the expert)."""
        raise NotImplementedError


def sparsify_top_k(logits: torch.Tensor, top_k: int | None) -> torch.Tensor:
    """Keep the ``top_k`` largest logits per row and set the rest to -inf (inference-time routing).

    Args:
        logits: [B, K] or [K] gate logits.
        top_k: experts to keep (1 <= top_k <= K); None or K keeps all.

    Returns:
        Logits of the same shape; after a softmax the kept experts' weights are renormalised over the
        top-k set: w_k = exp(z_k) / sum_{j in top-k} exp(z_j).
    """
    k = logits.shape[-1]
    if top_k is None or top_k >= k:
        return logits
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    kth = logits.topk(top_k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))
