"""Standardising the prompt gate's features on the training prompts, once, as training begins.

A prompt gate reads (phi(x) - mu) / sigma (see :class:`mixdpo.gating.PromptGate`); mu and sigma [H] come
from the features of the training set's prompts: from the precomputed reference table when it holds them
(no extra forward pass), otherwise from one no-grad pass of the frozen feature model over the prompts.
It runs at ``on_train_begin``: after a resumed checkpoint has restored fitted statistics, and after the
model is wrapped, so that under DeepSpeed ZeRO-3 the pass gathers each layer's weights as a forward does.
"""

from __future__ import annotations

import logging

import torch
from torch.utils.data import Dataset
from transformers import TrainerCallback

from mixdpo.batch import PROMPT_ATTENTION_MASK, PROMPT_INPUT_IDS
from mixdpo.gating import PromptGate
from mixdpo.reference import ReferenceTable
from mixdpo.trainer.dataset_pass import no_grad_batches
from mixdpo.trainer.distributed import launch_sharding

logger = logging.getLogger(__name__)


def unfitted_prompt_gates(gate: torch.nn.Module) -> list[PromptGate]:
    """The prompt gates inside ``gate`` (itself, or the prompt part of a prompt+user gate) not yet fitted."""
    return [module for module in gate.modules() if isinstance(module, PromptGate) and not module.fitted]


def _features_from_pass(trainer, dataset: Dataset) -> torch.Tensor:
    """[N, H] prompt features of every row of ``dataset`` from the policy's frozen feature model."""
    backend = trainer.policy.backend
    parts = [
        backend.prompt_features(batch[PROMPT_INPUT_IDS], batch[PROMPT_ATTENTION_MASK])
        for batch in no_grad_batches(trainer, dataset)
    ]
    return torch.cat(parts).float().cpu()


def fit_prompt_gate_features(trainer, dataset: Dataset | None, table: ReferenceTable | None) -> None:
    """Fit mu, sigma of every unfitted prompt gate of ``trainer.policy`` on ``dataset``'s prompts.

    A gate fitted before (a resumed or continued policy) keeps its statistics: refitting would change the
    function it learned. Every process computes the same statistics from the same rows.
    """
    gates = unfitted_prompt_gates(trainer.policy.gate)
    if not gates or dataset is None or len(dataset) < 2:
        return
    if table is not None and table.prompt_features is not None:
        features = table.prompt_features.float()
    elif launch_sharding(trainer)[0]:
        # FSDP gathers weights only inside the wrapped model's forward, which this pass does not go through
        logger.warning(
            "the prompt gate's features are not standardised: under FSDP they come from the precomputed "
            "reference table, and precompute_ref_log_probs is off; the gate reads layer-normalised features "
            "only and may not learn to route"
        )
        return
    else:
        features = _features_from_pass(trainer, dataset)
    for gate in gates:
        gate.fit_feature_statistics(features)
    logger.info("prompt gate: features standardised on %d training prompts", len(features))


class StandardiseGateFeatures(TrainerCallback):
    """Runs :func:`fit_prompt_gate_features` on the trainer's training set when training begins."""

    def __init__(self, trainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        trainer = self.trainer
        fit_prompt_gate_features(trainer, trainer.train_dataset, trainer._active_table.get("train"))
