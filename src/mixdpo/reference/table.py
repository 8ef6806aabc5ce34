"""Reference log-prob tables: scored once without gradients, then looked up by ``example_index``.

A table has N rows (examples) and R columns: R = 1 for one reference shared by all experts, R = K for
per-expert references (DESIGN.md: s_k = log pi_k - log pi_ref_k). ``compute_reference_logps`` fills it
from whatever batches it is given, so it can run on one shard of a dataset per process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from mixdpo.batch import (
    ATTENTION_MASK,
    COMPLETION_MASK,
    EXAMPLE_INDEX,
    INPUT_IDS,
    PROMPT_FEATURES,
    REF_CHOSEN_LOGPS,
    REF_REJECTED_LOGPS,
)
from mixdpo.errors import DataError
from mixdpo.logprobs import sequence_logps, split_chosen_rejected

Batch = Mapping[str, torch.Tensor]
ScoreFn = Callable[[Batch], Sequence[torch.Tensor]]
"""``score_fn(batch) -> (chosen [B, R], rejected [B, R])``, optionally ``+ prompt_features [B, H]``."""


@dataclass
class ReferenceStats:
    """Counters that prove what a cache did (tests read ``forward_batches`` to show a hit did no work)."""

    forward_batches: int = 0  # score_fn calls, i.e. reference forward passes
    examples_scored: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    invalid_entries: int = 0  # entries found on disk but rejected (then recomputed)


@dataclass(frozen=True)
class ReferenceTable:
    """Reference log-probs of a whole dataset, one row per example.

    Attributes:
        chosen: ``[N, R]`` float32 log pi_ref_r(y_i+ | x_i).
        rejected: ``[N, R]`` float32 log pi_ref_r(y_i- | x_i).
        prompt_features: optional ``[N, H]`` gate features of each prompt from the frozen base.
    """

    chosen: torch.Tensor
    rejected: torch.Tensor
    prompt_features: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.chosen.dim() != 2 or self.chosen.shape != self.rejected.shape:
            raise ValueError(
                f"chosen {tuple(self.chosen.shape)} and rejected {tuple(self.rejected.shape)} must be [N, R]"
            )
        features = self.prompt_features
        if features is not None and (features.dim() != 2 or features.shape[0] != self.chosen.shape[0]):
            raise ValueError(f"prompt_features {tuple(features.shape)} must be [N, H] with N = {len(self)}")

    def __len__(self) -> int:
        return self.chosen.shape[0]

    @property
    def num_columns(self) -> int:
        return self.chosen.shape[1]

    def lookup(self, example_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``example_index [B] -> (chosen [B, R], rejected [B, R])`` on the index's device."""
        idx = _check_index(example_index, len(self)).cpu()
        return self.chosen[idx].to(example_index.device), self.rejected[idx].to(example_index.device)


def attach_reference(batch: Batch, table: ReferenceTable) -> dict[str, torch.Tensor]:
    """A copy of ``batch`` with ``ref_chosen_logps`` / ``ref_rejected_logps`` (``[B]`` if R = 1, else
    ``[B, R]``, per ``mixdpo.batch``) and, when the table has them, ``prompt_features`` ``[B, H]``, on the
    device of ``input_ids``."""
    if EXAMPLE_INDEX not in batch:
        raise KeyError(f"batch has no '{EXAMPLE_INDEX}'; the collator must add it to use cached references")
    device = batch[INPUT_IDS].device
    chosen, rejected = table.lookup(batch[EXAMPLE_INDEX])
    if table.num_columns == 1:
        chosen, rejected = chosen[:, 0], rejected[:, 0]
    out = dict(batch)
    out[REF_CHOSEN_LOGPS], out[REF_REJECTED_LOGPS] = chosen.to(device), rejected.to(device)
    if table.prompt_features is not None:
        idx = batch[EXAMPLE_INDEX].cpu()
        out[PROMPT_FEATURES] = table.prompt_features[idx].to(device)
    return out


def _check_index(example_index: torch.Tensor, n: int) -> torch.Tensor:
    if example_index.dim() != 1 or example_index.is_floating_point():
        raise DataError(
            f"example_index must be an integer tensor [B], got {example_index.dtype} {example_index.shape}"
        )
    if example_index.numel() and (example_index.min() < 0 or example_index.max() >= n):
        bad = example_index[(example_index < 0) | (example_index >= n)][:5].tolist()
        raise DataError(f"example_index {bad} out of range for a dataset of {n} examples")
    return example_index.long()


def sequence_score_fn(
    models: nn.Module | Sequence[nn.Module], *, average: bool = False, project_only_completion: bool = True
) -> ScoreFn:
    """A ``score_fn`` for :func:`compute_reference_logps` from one reference model (R = 1) or one per
    expert (R = K): each column is :func:`mixdpo.logprobs.sequence_logps` of one model, split into chosen
    and rejected. Models run in eval mode (restored afterwards) so the cached values are deterministic."""
    model_list = [models] if isinstance(models, nn.Module) else list(models)

    def score(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        columns = []
        for model in model_list:
            device = next(model.parameters()).device
            ids, att, comp = (batch[k].to(device) for k in (INPUT_IDS, ATTENTION_MASK, COMPLETION_MASK))
            was_training = model.training
            model.eval()
            try:
                columns.append(
                    sequence_logps(
                        model,
                        ids,
                        att,
                        comp,
                        average=average,
                        project_only_completion=project_only_completion,
                    ).cpu()
                )
            finally:
                model.train(was_training)
        chosen, rejected = split_chosen_rejected(torch.stack(columns, dim=-1))  # [B, R] each
        return chosen, rejected

    return score


def compute_reference_logps(
    score_fn: ScoreFn,
    batches: Iterable[Batch],
    num_examples: int,
    *,
    num_columns: int,
    stats: ReferenceStats | None = None,
    require_complete: bool = True,
) -> ReferenceTable:
    """Score every batch under ``torch.no_grad()`` and place each row at its ``example_index``.

    Args:
        score_fn: ``batch -> (chosen [B, R], rejected [B, R][, prompt_features [B, H]])``; ``[B]`` is
            accepted when R = 1. One call is one reference forward pass (counted in ``stats``).
        batches: batches per ``mixdpo.batch``, each with ``example_index`` [B].
        num_examples: N, the dataset size.
        num_columns: R.
        stats: counters to update.
        require_complete: check that every example 0..N-1 was scored exactly once. Sharded (distributed)
            computation passes False on each shard, leaves the unseen rows NaN, and merges the shards
            itself (e.g. all-gather, then take the non-NaN rows) before saving.

    Returns:
        A CPU float32 :class:`ReferenceTable`.
    """
    chosen = torch.full((num_examples, num_columns), float("nan"))
    rejected = torch.full((num_examples, num_columns), float("nan"))
    features: torch.Tensor | None = None
    counts = torch.zeros(num_examples, dtype=torch.long)
    with torch.no_grad():
        for batch in batches:
            if EXAMPLE_INDEX not in batch:
                raise DataError(
                    f"a batch has no '{EXAMPLE_INDEX}'; reference caching needs it in every batch"
                )
            idx = _check_index(batch[EXAMPLE_INDEX], num_examples).cpu()
            out = score_fn(batch)
            if stats is not None:
                stats.forward_batches += 1
                stats.examples_scored += idx.numel()
            chosen[idx] = _as_columns(out[0], idx.numel(), num_columns, "chosen")
            rejected[idx] = _as_columns(out[1], idx.numel(), num_columns, "rejected")
            has_features = len(out) > 2 and out[2] is not None
            if counts.sum() > 0 and has_features != (features is not None):
                raise ValueError("score_fn returned prompt features for some batches but not others")
            if has_features:
                f = out[2].detach().float().cpu()
                if f.dim() != 2 or f.shape[0] != idx.numel():
                    raise ValueError(f"score_fn returned prompt_features {tuple(f.shape)}; expected [B, H]")
                if features is None:
                    features = torch.full((num_examples, f.shape[1]), float("nan"))
                features[idx] = f
            counts += torch.bincount(idx, minlength=num_examples)
    if require_complete:
        for what, bad in (("never scored", counts == 0), ("scored more than once", counts > 1)):
            if bad.any():
                first = bad.nonzero().flatten()[:10].tolist()
                raise DataError(
                    f"{int(bad.sum())} of {num_examples} examples were {what} (first: {first}); the batches "
                    "must cover each example exactly once (no drop_last, no sampler with replacement)"
                )
    return ReferenceTable(chosen, rejected, features)


def _as_columns(t: torch.Tensor, b: int, r: int, name: str) -> torch.Tensor:
    t = t.detach().float().cpu()
    if t.dim() == 1 and r == 1:
        t = t[:, None]
    if t.shape != (b, r):
        raise ValueError(f"score_fn returned {name} of shape {tuple(t.shape)}; expected [B, R] = [{b}, {r}]")
    if torch.isnan(t).any():
        raise ValueError(f"score_fn returned NaN {name} log-probs")
    return t
