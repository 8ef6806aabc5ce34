"""A gate that reads both the prompt and the user: the sum of a prompt gate's and a user gate's logits."""

from __future__ import annotations

from typing import Any

import torch

from mixdpo.gating.base import Gate, GateInputs
from mixdpo.gating.prompt_gate import PromptGate
from mixdpo.gating.user_gate import UserGate


class PromptUserGate(Gate):
    """logits(x, u) = prompt_gate(x) + user_gate(u): w(x, u) proportional to w_prompt(x) * w_user(u).

    Unknown users fall back to the user gate's learned fallback row, so the routing degrades to the
    prompt gate plus the population prior.
    """

    kind = "prompt+user"
    needs_prompt_features = True
    needs_users = True

    def __init__(self, prompt: PromptGate, user: UserGate):
        super().__init__(prompt.num_experts)
        if user.num_experts != prompt.num_experts:
            raise ValueError("prompt and user gates must have the same number of experts")
        self.prompt, self.user = prompt, user

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "prompt": self.prompt.config(), "user": self.user.config()}

    def split_expert(self, src: int, dst: int) -> None:
        self.prompt.split_expert(src, dst)
        self.user.split_expert(src, dst, halve=False)

    def forward(self, inputs: GateInputs) -> torch.Tensor:
        return self.prompt(inputs) + self.user(inputs)
