"""Training curves from a run's ``metrics.jsonl`` (one JSON object per logging step).

Keys follow :mod:`mixdpo.objective.metrics` (``loss``, ``rewards/accuracies``, ``em/elbo``,
``em/usage_0`` ...); evaluation entries carry the same names with an ``eval_`` prefix and are drawn
dashed with markers. Only panels with data are drawn; the x axis is ``step`` (the line number when a
record has none). Figures are built with matplotlib's object API (no pyplot, no display, no global
backend change) and saved with the Agg renderer.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

logger = logging.getLogger(__name__)
EVAL_PREFIX = "eval_"
DPI = 100


@dataclass(frozen=True)
class Panel:
    """One subplot: the metric names it shows (exact names, or a family ``prefix<k>``)."""

    title: str
    ylabel: str
    keys: tuple[str, ...] = ()
    family: str | None = None  # e.g. "em/usage_": one line per expert k
    ylim: tuple[float, float] | None = None


PANELS = (
    Panel("Loss", "loss", keys=("loss",)),
    Panel("Preference accuracy", "share of pairs", keys=("rewards/accuracies", "em/mixture_accuracy")),
    Panel("Reward margin r(y+) - r(y-)", "margin", keys=("rewards/margins",)),
    Panel("Log-likelihood and ELBO", "nats per pair", keys=("em/log_likelihood", "em/elbo")),
    Panel("Entropy", "nats", keys=("em/entropy", "gate/entropy")),
    Panel("Expert usage (mean responsibility q)", "share", family="em/usage_", ylim=(0.0, 1.0)),
    Panel("Gate weights (mean w)", "weight", family="gate/weight_", ylim=(0.0, 1.0)),
)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl``; blank lines and lines that are not a JSON object (e.g. a last
    line cut short by a killed run) are skipped with a warning."""
    records = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        else:
            logger.warning("%s line %d is not a JSON object; skipped", path, number)
    return records


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def series(records: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of every record that has a finite number under ``key``."""
    xs, ys = [], []
    for i, record in enumerate(records):
        y = _number(record.get(key))
        if y is not None:
            x = _number(record.get("step"))
            xs.append(x if x is not None else float(i))
            ys.append(y)
    return xs, ys


def _panel_keys(panel: Panel, names: set[str]) -> list[str]:
    """The metric names (without ``eval_``) this panel draws, among those present in the records."""
    bare = {name.removeprefix(EVAL_PREFIX) for name in names}
    if panel.family is None:
        return [key for key in panel.keys if key in bare]
    pattern = re.compile(re.escape(panel.family) + r"(\d+)$")
    found = [(int(m.group(1)), key) for key in bare if (m := pattern.match(key))]
    return [key for _, key in sorted(found)]


def _label(key: str, panel: Panel) -> str:
    if panel.family is not None:
        return f"expert {key.removeprefix(panel.family)}"
    return key


def plot_training_curves(records: list[dict[str, Any]], path: str | Path) -> Path | None:
    """Draw every panel of :data:`PANELS` that has data into one PNG; None (no file) when none has."""
    names = {key for record in records for key, value in record.items() if _number(value) is not None}
    panels = [(panel, keys) for panel in PANELS if (keys := _panel_keys(panel, names))]
    if not panels:
        return None
    cols = 2 if len(panels) > 1 else 1
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(6 * cols, 3.2 * rows), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).flatten()
    for ax, (panel, keys) in zip(axes, panels, strict=False):
        for index, key in enumerate(keys):
            color = f"C{index}"
            xs, ys = series(records, key)
            if xs:
                ax.plot(xs, ys, color=color, label=_label(key, panel))
            xs, ys = series(records, EVAL_PREFIX + key)
            if xs:
                ax.plot(
                    xs,
                    ys,
                    color=color,
                    linestyle="--",
                    marker="o",
                    markersize=3,
                    label=f"{_label(key, panel)} (eval)",
                )
        ax.set_title(panel.title)
        ax.set_xlabel("step")
        ax.set_ylabel(panel.ylabel)
        if panel.ylim is not None:
            ax.set_ylim(*panel.ylim)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle("Training curves")
    path = Path(path)
    fig.savefig(path, dpi=DPI)
    return path
