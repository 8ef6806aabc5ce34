"""MoE-DPO's user gate: a user-id embedding table with a learned fallback, plus optional user features."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from mixdpo.batch import UNKNOWN_USER
from mixdpo.gating.base import Gate, GateInputs


class UserGate(Gate):
    """logits(u) = E[u] + W f(u) + b: a row of expert logits per known user, and a linear map of numeric
    user features.

    Users never seen in training (id ``UNKNOWN_USER`` = -1) get the **fallback row**, a learned logit
    vector: during training each known user's id is replaced by the fallback with probability
    ``user_dropout``, so the fallback learns the population's routing (the prior for unseen users) while
    the user rows learn each user's deviation. Rows start at zero (uniform routing).

    Personalisation without retraining experts: :meth:`add_users` appends rows for new users (initialised
    from the fallback); then only the gate is fitted to the new users' pairs.

    Args:
        num_experts: K.
        num_users: rows of the table (known users).
        num_user_features: F, width of numeric user features (0 = none).
        user_dropout: probability of replacing a known user by the fallback during training.
    """

    kind = "user"
    needs_users = True

    def __init__(
        self, num_experts: int, num_users: int, num_user_features: int = 0, user_dropout: float = 0.1
    ):
        super().__init__(num_experts)
        if not 0.0 <= user_dropout < 1.0:
            raise ValueError(f"user_dropout must be in [0, 1), got {user_dropout}")
        self.num_users, self.num_user_features, self.user_dropout = num_users, num_user_features, user_dropout
        # Row num_users is the fallback for unknown users.
        self.table = nn.Embedding(num_users + 1, num_experts)
        nn.init.zeros_(self.table.weight)
        self.features = nn.Linear(num_user_features, num_experts) if num_user_features > 0 else None
        if self.features is not None:
            nn.init.zeros_(self.features.weight)
            nn.init.zeros_(self.features.bias)

    def config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "num_experts": self.num_experts,
            "num_users": self.num_users,
            "num_user_features": self.num_user_features,
            "user_dropout": self.user_dropout,
        }

    @property
    def fallback_index(self) -> int:
        return self.num_users

    def rows_for(self, user_ids: torch.Tensor) -> torch.Tensor:
        """Map user ids [B] to table rows: known ids stay, -1 and out-of-range ids go to the fallback."""
        known = (user_ids >= 0) & (user_ids < self.num_users)
        if self.training and self.user_dropout > 0:
            keep = torch.rand(user_ids.shape, device=user_ids.device) >= self.user_dropout
            known = known & keep
        return torch.where(known, user_ids, torch.full_like(user_ids, self.fallback_index))

    @torch.no_grad()
    def split_expert(self, src: int, dst: int, halve: bool = True) -> None:
        """Copy expert ``src``'s column to ``dst`` (and subtract log 2 from both unless ``halve`` is False:
        a combined gate halves in its prompt part)."""
        shift = math.log(2.0) if halve else 0.0
        self.table.weight[:, dst] = self.table.weight[:, src] - shift
        self.table.weight[:, src] -= shift
        if self.features is not None:
            self.features.weight[dst] = self.features.weight[src]
            self.features.bias[dst] = self.features.bias[src]

    def forward(self, inputs: GateInputs) -> torch.Tensor:
        """Returns [B, K] logits."""
        if inputs.user_ids is None:
            user_ids = torch.full((inputs.batch_size,), UNKNOWN_USER, device=self.table.weight.device)
        else:
            user_ids = inputs.user_ids.to(self.table.weight.device).long()
        logits = self.table(self.rows_for(user_ids))
        if self.features is not None:
            if inputs.user_features is None:
                raise ValueError(
                    f"this user gate expects {self.num_user_features} numeric user features per pair"
                )
            logits = logits + self.features(inputs.user_features.to(self.features.weight.dtype))
        return logits

    @torch.no_grad()
    def add_users(self, count: int) -> None:
        """Append ``count`` rows for new users, initialised from the fallback row (the population prior).

        The new users get ids ``num_users .. num_users + count - 1`` (in the order of the caller's user
        vocabulary); the fallback stays the last row.
        """
        if count <= 0:
            return
        old = self.table.weight
        fallback = old[self.fallback_index]
        new = torch.cat([old[: self.num_users], fallback.expand(count, -1).clone(), fallback[None]], dim=0)
        self.table = nn.Embedding.from_pretrained(new, freeze=False)
        self.num_users += count
