"""Frozen experts are scored once: gate-only training looks their log-probs up instead of running them.

When no expert parameter is trainable (``mixdpo personalize``: refit the gate of a trained policy), the
experts' log pi_k(y+/- | x) [N, K] cannot change during training, so one no-grad pass per dataset gives
every later step its expert log-probs; with the reference table as well, a training step runs no language
model at all: the E-step, the gate's M-step and its backward over K numbers per pair. Refitting a gate then
costs one pass over the new pairs instead of one per epoch.

The pass runs in eval mode, so the cached values are those without dropout (the experts are frozen, so
adapter dropout would only add noise to what the gate is fitted to). Used only on one process without
sharding (FSDP / ZeRO-3 gather weights inside the wrapped model's forward, and each process would score
the whole dataset); otherwise the experts run in every step as usual.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch
from torch.utils.data import Dataset

from mixdpo.batch import (
    ATTENTION_MASK,
    COMPLETION_MASK,
    EXAMPLE_INDEX,
    INPUT_IDS,
    POLICY_CHOSEN_LOGPS,
    POLICY_REJECTED_LOGPS,
)
from mixdpo.data import PreferenceDataset
from mixdpo.logprobs import split_chosen_rejected
from mixdpo.reference import ReferenceTable, compute_reference_logps
from mixdpo.trainer.dataset_pass import no_grad_batches
from mixdpo.trainer.distributed import launch_sharding

logger = logging.getLogger(__name__)


def experts_frozen(policy: torch.nn.Module) -> bool:
    """True when no parameter of the policy's expert backend is trainable."""
    return not any(p.requires_grad for p in policy.backend.parameters())


def attach_expert_logps(batch: Mapping[str, torch.Tensor], table: ReferenceTable) -> dict[str, torch.Tensor]:
    """A copy of ``batch`` with ``policy_chosen_logps`` / ``policy_rejected_logps`` [B, K] looked up by
    ``example_index``."""
    chosen, rejected = table.lookup(batch[EXAMPLE_INDEX])
    return dict(batch) | {POLICY_CHOSEN_LOGPS: chosen, POLICY_REJECTED_LOGPS: rejected}


class FrozenExpertScores:
    """The frozen experts' log-prob table of each dataset a trainer reads (computed on first use)."""

    def __init__(self, trainer):
        self.trainer = trainer
        self._tables: dict[int, ReferenceTable] = {}
        self.active: dict[str, ReferenceTable | None] = {"train": None, "eval": None}
        self.passes = 0  # datasets scored (tests read it)

    def usable(self) -> bool:
        trainer = self.trainer
        fsdp, zero_stage = launch_sharding(trainer)
        return (
            experts_frozen(trainer.policy)
            and trainer.accelerator.num_processes == 1
            and not fsdp
            and zero_stage != 3
        )

    def activate(self, mode: str, dataset: Dataset | None) -> None:
        """Make ``dataset``'s table the one attached to ``mode`` ("train" / "eval") batches, or none."""
        self.active[mode] = self.table(dataset) if dataset is not None else None

    def table(self, dataset: Dataset) -> ReferenceTable | None:
        """``dataset``'s table: chosen / rejected [N, K] log pi_k, or None when the experts are trainable."""
        if not isinstance(dataset, PreferenceDataset) or not self.usable():
            return None
        if id(dataset) not in self._tables:
            backend = self.trainer.policy.backend

            def score(batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
                return split_chosen_rejected(
                    backend(batch[INPUT_IDS], batch[ATTENTION_MASK], batch[COMPLETION_MASK])
                )

            batches = no_grad_batches(self.trainer, dataset, desc="frozen experts' log-probs (once)")
            self._tables[id(dataset)] = compute_reference_logps(
                score, batches, len(dataset), num_columns=self.trainer.policy.num_experts
            )
            self.passes += 1
            logger.info(
                "experts frozen: their log-probs on %d pairs scored once, looked up each step", len(dataset)
            )
        return self._tables[id(dataset)]

    def attach(self, batch: Mapping[str, torch.Tensor], mode: str) -> Mapping[str, torch.Tensor]:
        table = self.active[mode]
        return batch if table is None else attach_expert_logps(batch, table)
