"""Checkpoints that are complete or ignored: a marker file written last tells a finished checkpoint from
one cut off mid-write (crash, kill -9), and resuming only ever picks finished ones."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from mixdpo.atomic import fsync_tree

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


def mark_complete(folder: Path, step: int, collapse_events: list[dict[str, Any]]) -> None:
    """Flush the checkpoint's files, then write the marker (last: its presence means everything is there)."""
    fsync_tree(folder)
    marker = {"step": step, "complete": True, "collapse_events": collapse_events}
    (folder / COMPLETE_MARKER).write_text(json.dumps(marker) + "\n")
