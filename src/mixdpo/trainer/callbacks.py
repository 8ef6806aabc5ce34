"""Trainer callbacks: ``metrics.jsonl`` (one JSON object per logging step, the run-directory contract) and a
compact progress line instead of the Trainer's full dict of ~30 metrics per log event."""

from __future__ import annotations

import json
import math
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback


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


# What the progress line shows, in order (short label, metric name); usage/weights are added per expert.
_SHOWN = (
    ("loss", "loss"),
    ("acc", "rewards/accuracies"),
    ("margin", "rewards/margins"),
    ("mix-acc", "em/mixture_accuracy"),
    ("elbo", "em/elbo"),
)


def compact_line(state, logs: dict) -> str:
    """``step 20  loss 0.412  acc 0.875  margin 1.204  mix-acc 1.000  elbo -0.39  usage 0.66/0.34``."""
    parts = [f"step {state.global_step}"]
    for label, key in _SHOWN:
        for prefix in ("", "eval_"):
            if isinstance(logs.get(prefix + key), (int, float)):
                parts.append(f"{prefix}{label} {logs[prefix + key]:.3f}")
    usage = [logs[k] for k in sorted(logs) if k.startswith("em/usage_")]
    if len(usage) > 1:
        parts.append("usage " + "/".join(f"{u:.2f}" for u in usage))
    if "train_runtime" in logs:
        parts.append(f"done in {logs['train_runtime']:.0f} s")
    return "  ".join(parts)


class CompactProgressCallback(ProgressCallback):
    """The Trainer's tqdm progress bar, with one short line per log event (the full metrics are in
    ``metrics.jsonl`` and in ``report_to`` loggers)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and self.training_bar is not None and logs:
            self.training_bar.write(compact_line(state, logs))


class CompactPrinterCallback(PrinterCallback):
    """Without progress bars (``disable_tqdm``): the same short line, printed."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            print(compact_line(state, logs))
