"""MoE-DPO's prompt gate: an MLP from prompt features to expert logits."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from mixdpo.gating.base import Gate, GateInputs


class PromptGate(Gate):
    """logits(x) = MLP(normalise(phi(x))), phi(x) the prompt features [B, H].

    phi defaults to the mean-pooled last hidden state of the frozen reference model over the prompt tokens
    (no extra model; cacheable with the reference log-probs), or embeddings from a separate sentence
    encoder. Features are layer-normalised (no affine) first so that the gate's learning rate does not
    depend on the scale of the base model's hidden states. The last layer starts at zero, so the gate
    starts uniform (w_k = 1/K) for every prompt.

    Args:
        num_experts: K.
        feature_dim: H.
        hidden_dim: width of the hidden layer; 0 gives a linear gate.
        dropout: dropout on the hidden layer.
    """

    kind = "prompt"
    needs_prompt_features = True

    def __init__(self, num_experts: int, feature_dim: int, hidden_dim: int = 64, dropout: float = 0.0):
        super().__init__(num_experts)
        self.feature_dim, self.hidden_dim, self.dropout = feature_dim, hidden_dim, dropout
        self.norm = nn.LayerNorm(feature_dim, elementwise_affine=False)
        if hidden_dim > 0:
            self.mlp = nn.Sequential(
                nn.Linear(feature_dim, hidden_dim),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(hidden_dim, num_experts),
            )
        else:
            self.mlp = nn.Sequential(nn.Linear(feature_dim, num_experts))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "num_experts": self.num_experts,
            "feature_dim": self.feature_dim,
            "hidden_dim": self.hidden_dim,
            "dropout": self.dropout,
        }

    @torch.no_grad()
    def split_expert(self, src: int, dst: int) -> None:
        last = self.mlp[-1]
        last.weight[dst] = last.weight[src]
        last.bias[dst] = last.bias[src] - math.log(2.0)
        last.bias[src] -= math.log(2.0)

    def forward(self, inputs: GateInputs) -> torch.Tensor:
        """Returns [B, K] logits."""
        if inputs.prompt_features is None:
            raise ValueError(
                "the prompt gate needs prompt features; compute them with the policy's feature model"
            )
        feats = inputs.prompt_features.to(self.mlp[0].weight.dtype)
        if feats.shape[-1] != self.feature_dim:
            raise ValueError(
                f"prompt features have dim {feats.shape[-1]}, the gate expects {self.feature_dim}"
            )
        return self.mlp(self.norm(feats))
