"""Plots of an evaluation result: who went to which expert, and how accurate each group is.

- :func:`plot_expert_heatmap`: rows (groups or users) x experts, e.g. ``responsibilities_by_group``
  (mean q_ik over a group's pairs) or ``gate_weights_by_user`` (mean w_ik over a user's pairs).
- :func:`plot_group_accuracy`: held-out accuracy per group, one bar per model (mixture vs baseline).

Figures use matplotlib's object API (no pyplot, no display) and are saved at 100 dpi.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

DPI = 100
MAX_LABELLED_ROWS = 40  # above this, row names and cell values are left out (they would overlap)


def plot_expert_heatmap(
    table: Mapping[str, list[float]],
    path: str | Path,
    *,
    title: str,
    row_label: str,
    value_label: str,
    sort_rows: bool = False,
) -> Path:
    """Heatmap of ``table`` ({row name: [K] values in [0, 1]}) with experts as columns.

    Args:
        table: one row of K values per group / user.
        path: PNG to write.
        title, row_label, value_label: plot title, y-axis label, colour-bar label.
        sort_rows: order rows by their largest expert, then by its value (makes blocks of users visible).
    """
    names = list(table)
    if not names:
        raise ValueError("nothing to plot: the table has no rows")
    values = np.array([table[name] for name in names], dtype=float)
    if sort_rows:
        order = sorted(range(len(names)), key=lambda i: (int(values[i].argmax()), -values[i].max()))
        names, values = [names[i] for i in order], values[order]
    rows, k = values.shape
    labelled = rows <= MAX_LABELLED_ROWS
    height = min(2.4 + 0.4 * rows, 12.0) if labelled else 8.0
    fig = Figure(figsize=(max(5.0, 2.0 + 1.0 * k), height), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(values, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(k), [f"expert {j}" for j in range(k)], rotation=45 if k > 6 else 0)
    if labelled:
        ax.set_yticks(range(rows), names)
        if rows * k <= 400:
            for i in range(rows):
                for j in range(k):
                    color = "black" if values[i, j] > 0.6 else "white"
                    ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", color=color, fontsize=8)
    else:
        ax.set_yticks([])
        row_label = f"{row_label} ({rows}, sorted by preferred expert)" if sort_rows else row_label
    ax.set_xlabel("expert")
    ax.set_ylabel(row_label)
    ax.set_title(textwrap.fill(title, 40))
    fig.colorbar(image, ax=ax, label=value_label)
    path = Path(path)
    fig.savefig(path, dpi=DPI)
    return path


def plot_group_accuracy(results: Mapping[str, Mapping[str, Any]], path: str | Path) -> Path | None:
    """Grouped bars: held-out accuracy of every group (x) for every model (one bar colour each), with the
    overall accuracy in the legend and chance (50%) dashed. None (no file) when no model has groups."""
    per_model = {name: r.get("per_group_accuracy") or {} for name, r in results.items()}
    groups = sorted({g for accuracies in per_model.values() for g in accuracies})
    if not groups:
        return None
    width = 0.8 / len(per_model)
    fig = Figure(
        figsize=(max(5.5, 1.2 + 1.1 * len(groups) * max(1, len(per_model) / 2)), 3.8 + 0.25 * len(per_model)),
        dpi=DPI,
        layout="constrained",
    )
    ax = fig.subplots()
    x = np.arange(len(groups))
    for index, (name, accuracies) in enumerate(per_model.items()):
        heights = [accuracies.get(g, np.nan) for g in groups]
        overall = results[name].get("mixture_accuracy")
        label = name if overall is None else f"{name} (overall {100 * overall:.1f}%)"
        offset = (index - (len(per_model) - 1) / 2) * width
        bars = ax.bar(x + offset, heights, width, label=label, color=f"C{index}")
        ax.bar_label(bars, fmt="{:.0%}", fontsize=8, padding=2)
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(x, groups, rotation=30 if len(groups) > 5 else 0)
    ax.set_ylim(0.0, 1.12)
    ax.set_xlabel("group")
    ax.set_ylabel("held-out accuracy")
    ax.set_title("Accuracy per group")
    fig.legend(loc="outside lower center", fontsize="small")
    path = Path(path)
    fig.savefig(path, dpi=DPI)
    return path
