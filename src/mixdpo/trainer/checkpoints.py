"""Checkpoints that are complete or ignored: a marker file written last tells a finished checkpoint from
one cut off mid-write (crash, kill -9), and resuming only ever picks finished ones."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
from torch.distributed.tensor import DTensor

from mixdpo.atomic import fsync_tree
from mixdpo.errors import MixDPOError
from mixdpo.policy import MixturePolicy

logger = logging.getLogger(__name__)

COMPLETE_MARKER = "mixdpo_checkpoint.json"


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The highest ``checkpoint-N`` in ``output_dir`` whose write finished (it has the completion marker)."""
    complete = []
    for path in Path(output_dir).glob("checkpoint-*"):
        step = path.name.removeprefix("checkpoint-")
        if not step.isdigit():
            continue
        if (path / COMPLETE_MARKER).is_file():
            complete.append((int(step), path))
        else:
            logger.warning("ignoring %s: it was not completely written (interrupted save)", path)
    return str(max(complete)[1]) if complete else None


def load_policy_checkpoint(target: torch.nn.Module, checkpoint: str | Path) -> None:
    """Load a checkpoint's saved policy into the training policy ``target`` (whole or FSDP-sharded).

    Raises:
        MixDPOError: the checkpoint is incomplete or was written by a different policy configuration.
    """
    folder = Path(checkpoint)
    if (folder / "trainer_state.json").is_file() and not (folder / COMPLETE_MARKER).is_file():
        raise MixDPOError(
            f"checkpoint {folder} is incomplete (the run stopped while writing it); resume from an "
            "earlier checkpoint or delete it"
        )
    state = MixturePolicy.from_pretrained(folder).state_dict()
    if any(isinstance(p, DTensor) for p in target.parameters()):
        # FSDP2 holds shards: each process keeps its own slice of the full tensors
        options = StateDictOptions(full_state_dict=True, strict=False)
        missing, unexpected = set_model_state_dict(target, state, options=options)
    else:
        missing, unexpected = target.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise MixDPOError(
            f"checkpoint {folder} does not match this run's policy (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}); resume with the config that wrote it"
        )


def mark_complete(folder: Path, step: int, collapse_events: list[dict[str, Any]]) -> None:
    """Flush the checkpoint's files, then write the marker (last: its presence means everything is there)."""
    fsync_tree(folder)
    marker = {"step": step, "complete": True, "collapse_events": collapse_events}
    (folder / COMPLETE_MARKER).write_text(json.dumps(marker) + "\n")
