"""Side-by-side tables of evaluation results: plain text for the terminal, markdown for report.md.

Each column is one model's result from :func:`~mixdpo.evaluation.evaluate_policy` (or its ``baseline``
entry); a metric a model does not have (e.g. ARI of a baseline, or anything per group on data without
groups) is shown as ``-``. Accuracies are percentages; ARI / NMI lie in [-0.5, 1] (1 = groups recovered).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Result = Mapping[str, Any]
Cell = Callable[[Result], str]
MISSING = "-"


def _percent(value: Any) -> str:
    return MISSING if value is None else f"{100 * value:.1f}%"


def _number(value: Any, digits: int = 3) -> str:
    return MISSING if value is None else f"{value:.{digits}f}"


def _vector(value: Any) -> str:
    return MISSING if value is None else " / ".join(f"{v:.2f}" for v in value)


def _get(key: str, fmt: Callable[[Any], str]) -> Cell:
    return lambda result: fmt(result.get(key))


def _group_cell(group: str) -> Cell:
    return lambda result: _percent((result.get("per_group_accuracy") or {}).get(group))


def _groups(results: Mapping[str, Result]) -> list[str]:
    labels = {g for r in results.values() for g in (r.get("per_group_accuracy") or {})}
    return sorted(labels)


def comparison_rows(results: Mapping[str, Result], *, detailed: bool = False) -> list[tuple[str, list[str]]]:
    """The table body: (row label, one formatted cell per model).

    Rows: overall held-out accuracy, accuracy per group, ARI and routing accuracy; with ``detailed``
    also reward accuracy, mean log-likelihood, NMI, oracle accuracy, expert usage and gate weights.
    Rows that are ``-`` for every model are dropped.
    """
    rows: list[tuple[str, Cell]] = [("held-out accuracy", _get("mixture_accuracy", _percent))]
    if detailed:
        rows += [
            ("reward accuracy", _get("reward_accuracy", _percent)),
            ("mean log-likelihood", _get("mixture_log_likelihood", _number)),
        ]
    rows += [(f"accuracy: {g}", _group_cell(g)) for g in _groups(results)]
    rows.append(("ARI", _get("ari", _number)))
    if detailed:
        rows.append(("NMI", _get("nmi", _number)))
    rows.append(("routing accuracy", _get("routing_accuracy", _percent)))
    if detailed:
        rows += [
            ("oracle accuracy", _get("oracle_accuracy", _percent)),
            ("expert usage", _get("expert_usage", _vector)),
            ("gate weights", _get("gate_weights", _vector)),
        ]
    table = [(label, [cell(r) for r in results.values()]) for label, cell in rows]
    return [(label, cells) for label, cells in table if any(c != MISSING for c in cells)]


def format_comparison(results: Mapping[str, Result]) -> str:
    """Plain-text table, one column per model name, e.g. for ``{"DPO (K=1)": ..., "MoE-DPO (K=2)": ...}``::

    metric              DPO (K=1)  MoE-DPO (K=2)
    held-out accuracy       61.0%          88.5%
    accuracy: concise       90.0%          89.0%
    ...
    """
    if not results:
        raise ValueError("no results to compare")
    header = ["metric", *results]
    body = [[label, *cells] for label, cells in comparison_rows(results)]
    widths = [max(len(row[c]) for row in [header, *body]) for c in range(len(header))]

    def line(row: list[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    return "\n".join(line(row) for row in [header, *body])


def markdown_comparison(results: Mapping[str, Result]) -> str:
    """The detailed comparison (:func:`comparison_rows` with ``detailed=True``) as a markdown table."""

    def row(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    lines = [row(["metric", *results]), "|---|" + "---:|" * len(results)]
    lines += [row([label, *cells]) for label, cells in comparison_rows(results, detailed=True)]
    return "\n".join(lines)
