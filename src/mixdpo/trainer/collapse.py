"""Expert collapse: experts that stop being used, or that became copies of each other.

An expert whose share of the responsibilities stays below ``min_usage`` for ``patience`` steps is *dead*;
two experts whose margins agree to within ``tolerance`` on every pair for ``patience`` steps are
*duplicates*. The trainer reports both (log, metrics, ``collapse_events`` in checkpoints) and, with
``collapse_action=reseed``, re-seeds the expert as a perturbed copy of the busiest one and splits the
gate's weight between them (the split move of split-and-merge EM), so that EM can divide what the busy
expert explained alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from transformers import TrainerCallback


@dataclass(frozen=True)
class CollapseEvent:
    """A detected collapse: ``kind`` is ``dead`` or ``duplicate`` (of ``twin``); ``action``: what was done."""

    step: int
    kind: str
    expert: int
    usage: float
    twin: int | None = None
    action: str = "reported"

    def to_dict(self) -> dict:
        return asdict(self)


class CollapseMonitor:
    """Counts, per expert, the consecutive steps it looked dead or duplicated (see the module docstring).

    Args:
        num_experts: K.
        min_usage: an expert with mean responsibility below this on a step counts as unused on that step.
        patience: consecutive steps before an expert is reported (once; the count restarts after a report).
        tolerance: experts whose margins differ by less than this on every pair count as identical.
    """

    def __init__(self, num_experts: int, min_usage: float, patience: int, tolerance: float = 1e-4):
        self.k, self.min_usage, self.patience, self.tolerance = num_experts, min_usage, patience, tolerance
        self.low = torch.zeros(num_experts, dtype=torch.long)
        self.same = torch.zeros(num_experts, num_experts, dtype=torch.long)

    @torch.no_grad()
    def update(self, q: torch.Tensor, margins: torch.Tensor, step: int) -> list[CollapseEvent]:
        """Feed one step's responsibilities q [B, K] and margins D [B, K]; returns the new reports."""
        if self.k < 2:
            return []
        usage = q.float().mean(0).cpu()
        self.low = torch.where(usage < self.min_usage, self.low + 1, torch.zeros_like(self.low))
        diff = (margins[:, :, None] - margins[:, None, :]).abs().amax(0).cpu()
        same = torch.triu(diff < self.tolerance, diagonal=1)
        self.same = torch.where(same, self.same + 1, torch.zeros_like(self.same))
        events = []
        for k in range(self.k):
            if self.low[k] >= self.patience:
                events.append(CollapseEvent(step, "dead", k, float(usage[k])))
                self.reset(k)
        for k, j in (self.same >= self.patience).nonzero().tolist():
            events.append(CollapseEvent(step, "duplicate", j, float(usage[j]), twin=k))
            self.reset(j)
        return events

    def reset(self, k: int) -> None:
        self.low[k] = 0
        self.same[k, :] = 0
        self.same[:, k] = 0


class ApplyCollapseActions(TrainerCallback):
    """Calls ``trainer.apply_collapse_actions()`` after every optimizer step: collapses detected during a
    step are acted on only once its backward and update are done."""

    def __init__(self, trainer: Any):
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        self.trainer.apply_collapse_actions()
