"""``metrics.jsonl``: one JSON object per logging step in the run directory (the run-directory contract)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from transformers import TrainerCallback


class MetricsJsonlCallback(TrainerCallback):
    """Appends ``{"step", "epoch", **logs}`` to ``<output_dir>/metrics.jsonl`` on every log event (main
    process only). Non-finite numbers are written as null so that every line is valid JSON."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        record = {"step": state.global_step, "epoch": state.epoch}
        for key, value in logs.items():
            record[key] = None if isinstance(value, float) and not math.isfinite(value) else value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
