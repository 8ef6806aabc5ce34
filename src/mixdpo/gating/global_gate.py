"""Mix-DPO's gate: one global weight vector w, learned by gradient or by the closed-form EM update."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from mixdpo.gating.base import Gate, GateInputs
from mixdpo.objective import robbins_monro_update

GLOBAL_MODES = ("learned", "closed_form")


class GlobalGate(Gate):
    """Global mixture weights w_k, independent of prompt and user.

    Modes:
        ``learned``: logits are an ``nn.Parameter`` [K] trained by the M-step loss (soft cross-entropy
            against the responsibilities).
        ``closed_form``: w is a buffer updated by :meth:`update` with the Robbins-Monro average of the
            responsibilities (DESIGN.md: w <- (1 - rho) w + rho mean_i q_i); it receives no gradient.

    Both start uniform (w_k = 1/K) unless ``init_weights`` is given.
    """

    kind = "global"

    def __init__(self, num_experts: int, mode: str = "learned", init_weights: list[float] | None = None):
        super().__init__(num_experts)
        if mode not in GLOBAL_MODES:
            raise ValueError(f"global gate mode must be one of {GLOBAL_MODES}, got {mode!r}")
        self.mode = mode
        w = torch.full((num_experts,), 1.0 / num_experts)
        if init_weights is not None:
            w = torch.tensor(init_weights, dtype=torch.float32)
            if w.shape != (num_experts,) or (w <= 0).any():
                raise ValueError(f"init_weights must be {num_experts} positive numbers, got {init_weights}")
            w = w / w.sum()
        if mode == "learned":
            self.logits = nn.Parameter(w.log())
        else:
            self.register_buffer("weights", w)

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "num_experts": self.num_experts, "mode": self.mode}

    def forward(self, inputs: GateInputs | None = None) -> torch.Tensor:
        """Returns [K] logits (log-weights for ``closed_form``)."""
        if self.mode == "learned":
            # a computed tensor, not the parameter itself: DDP marks a parameter handed out as a forward
            # output ready twice in backward ("Expected to mark a variable ready only once")
            return self.logits.clone()
        return self.weights.clamp(min=torch.finfo(self.weights.dtype).tiny).log()

    @torch.no_grad()
    def split_expert(self, src: int, dst: int) -> None:
        if self.mode == "learned":
            self.logits[dst] = self.logits[src] - math.log(2.0)
            self.logits[src] -= math.log(2.0)
        else:
            half = self.weights[src] / 2
            self.weights[src] = half
            self.weights[dst] = half
            self.weights /= self.weights.sum()

    @torch.no_grad()
    def update(self, q: torch.Tensor, step_size: float, reduce_sum=None, min_weight: float = 0.0) -> None:
        """Closed-form mode only: w <- (1 - rho) w + rho * mean_i q_i over the (global) batch.

        Args:
            q: [B, K] responsibilities of this process's batch.
            step_size: rho in [0, 1].
            reduce_sum: all-reduce (sum) across processes, or None on one process.
            min_weight: floor on each w_k (< 1/K) so no expert's weight reaches exactly zero.
        """
        if self.mode != "closed_form":
            raise RuntimeError(
                "update() is for the closed_form global gate; a learned gate is trained by gradient"
            )
        self.weights.copy_(robbins_monro_update(self.weights, q, step_size, reduce_sum, min_weight))
