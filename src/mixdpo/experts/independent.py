"""``independent`` backend: K full models, each optionally with its own reference model.

This is the paper's most general form: expert k is a separate policy pi_k with its own reference
pi_ref_k. Experts may come from different checkpoints, or be K perturbed copies of one checkpoint
(:meth:`IndependentExperts.from_checkpoint`). References: one shared (R = 1) or one per expert (R = K);
by default a frozen copy of the checkpoint the experts started from.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mixdpo.experts.base import ExpertBackend, strip_prefix
from mixdpo.experts.symmetry import add_relative_noise_, expert_generator
from mixdpo.logprobs import sequence_logps


class IndependentExperts(ExpertBackend):
    """K independent causal LMs and R in {1, K} frozen references.

    Args:
        experts: K transformers causal LMs (trained in full).
        references: R = 1 shared or R = K per-expert frozen reference models.
        expert_identities, reference_identities: identities of the starting / reference weights.
        init_noise, seed: the symmetry-breaking noise that was (or is to be) applied; recorded in the config.
        average_logps: mean instead of sum of token log-probs.
    """

    kind = "independent"

    def __init__(
        self,
        experts: Sequence[nn.Module],
        references: Sequence[nn.Module],
        *,
        expert_identities: Sequence[str] = (),
        reference_identities: Sequence[str] = (),
        init_noise: float = 0.0,
        seed: int = 0,
        average_logps: bool = False,
    ):
        super().__init__(len(experts), average_logps)
        if len(references) not in (1, len(experts)):
            raise ValueError(
                f"give 1 shared reference or one per expert ({len(experts)}), got {len(references)}"
            )
        self.experts = nn.ModuleList(experts)
        for model in self.experts:
            model.requires_grad_(True)
        self.references = nn.ModuleList(references)
        for ref in self.references:
            ref.requires_grad_(False).eval()
        self.expert_identities = list(expert_identities)
        self.reference_identities = list(reference_identities)
        self.init_noise, self.seed = init_noise, seed

    @classmethod
    def from_checkpoint(
        cls,
        model: nn.Module,
        num_experts: int,
        *,
        identity: str = "",
        init_noise: float = 0.01,
        seed: int = 0,
        per_expert_references: bool = False,
        average_logps: bool = False,
    ) -> IndependentExperts:
        """K perturbed copies of ``model``; the unperturbed ``model`` itself becomes the frozen reference
        (shared, or copied K times if ``per_expert_references``)."""
        experts = []
        for k in range(num_experts):
            expert = copy.deepcopy(model)
            add_relative_noise_(expert.parameters(), init_noise, expert_generator(seed, k))
            experts.append(expert)
        refs = [model] + (
            [copy.deepcopy(model) for _ in range(num_experts - 1)] if per_expert_references else []
        )
        return cls(
            experts,
            refs,
            expert_identities=[identity] * num_experts,
            reference_identities=[identity] * len(refs),
            init_noise=init_noise,
            seed=seed,
            average_logps=average_logps,
        )

    def frozen_modules(self) -> list[nn.Module]:
        return list(self.references)

    # --- scoring -------------------------------------------------------------------------------
    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor
    ) -> torch.Tensor:
        """[N, K]: each expert's own forward pass."""
        return self._score(self.experts, input_ids, attention_mask, completion_mask)

    def expert_logps(
        self, k: int, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor
    ) -> torch.Tensor:
        """[N]: expert k's own forward pass (column k of :meth:`forward`)."""
        return sequence_logps(
            self.experts[k], input_ids, attention_mask, completion_mask, average=self.average_logps
        )

    def _score(self, models: nn.ModuleList, *batch: torch.Tensor) -> torch.Tensor:
        return torch.stack([sequence_logps(m, *batch, average=self.average_logps) for m in models], dim=-1)

    @torch.no_grad()
    def reference_logps(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor
    ) -> torch.Tensor:
        """[N, R] with R = 1 (shared reference) or K (per-expert references)."""
        return self._score(self.references, input_ids, attention_mask, completion_mask)

    @property
    def num_reference_columns(self) -> int:
        return len(self.references)

    def feature_model(self) -> nn.Module:
        return self.references[0]

    def reference_identity(self) -> str:
        return "|".join(self.reference_identities)

    # --- generation ----------------------------------------------------------------------------
    @contextmanager
    def use_expert(self, k: int | None) -> Iterator[nn.Module]:
        if k is None:
            yield self.references[0]
            return
        if not 0 <= k < self.num_experts:
            raise ValueError(f"expert index must be in [0, {self.num_experts - 1}], got {k}")
        yield self.experts[k]

    # --- persistence ---------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "num_experts": self.num_experts,
            "num_references": len(self.references),
            "expert_identities": self.expert_identities,
            "reference_identities": self.reference_identities,
            "init_noise": self.init_noise,
            "seed": self.seed,
            "average_logps": self.average_logps,
        }

    def save(self, directory: Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """Each expert in transformers' format (``expert_k/``); references are frozen and saved as
        ``reference_r/`` so the directory loads without the original checkpoints."""
        directory = Path(directory)
        for name, models in (("expert", self.experts), ("reference", self.references)):
            for k, model in enumerate(models):
                own = None if state_dict is None else strip_prefix(state_dict, f"{name}s.{k}.")
                model.save_pretrained(str(directory / f"{name}_{k}"), state_dict=own)

    @classmethod
    def load(
        cls, directory: Path, config: dict[str, Any], dtype: torch.dtype = torch.float32
    ) -> IndependentExperts:
        from transformers import AutoModelForCausalLM

        directory = Path(directory)
        experts = [
            AutoModelForCausalLM.from_pretrained(str(directory / f"expert_{k}"), dtype=dtype)
            for k in range(config["num_experts"])
        ]
        refs = [
            AutoModelForCausalLM.from_pretrained(str(directory / f"reference_{r}"), dtype=dtype)
            for r in range(config["num_references"])
        ]
        return cls(
            experts,
            refs,
            expert_identities=config.get("expert_identities", ()),
            reference_identities=config.get("reference_identities", ()),
            init_noise=config.get("init_noise", 0.0),
            seed=config.get("seed", 0),
            average_logps=config.get("average_logps", False),
        )

    def expert_parameters(self, k: int) -> Iterator[nn.Parameter]:
        return iter(self.experts[k].parameters())
