"""One no-grad pass of the policy over a dataset, in order, without touching the training RNG.

Statistics and tables that are computed once before training (prompt-feature standardisation, frozen
experts' log-probs) read every row of a dataset with the policy in eval mode. Iterating a DataLoader draws
a seed from the global RNG, so the pass runs in a forked RNG: a run that computed the table and one that did
not sample the same Gumbel noise and user dropout afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm


def no_grad_batches(trainer, dataset: Dataset, desc: str | None = None) -> Iterator[dict[str, Any]]:
    """Yield ``trainer``'s collated, device-placed batches of ``dataset`` in row order (eval batch size),
    under ``torch.no_grad()`` with the policy in eval mode (its mode is restored afterwards).

    ``desc``: show a progress bar with this label (main process only, unless ``disable_tqdm``).
    """
    policy = trainer.policy
    loader = DataLoader(
        dataset,
        batch_size=trainer.args.per_device_eval_batch_size,
        shuffle=False,
        collate_fn=trainer.data_collator,
    )
    show = desc is not None and not trainer.args.disable_tqdm and trainer.is_world_process_zero()
    was_training = policy.training
    policy.eval()
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            for batch in tqdm(loader, desc=desc, disable=not show):
                yield trainer._prepare_inputs(batch)
    finally:
        policy.train(was_training)
