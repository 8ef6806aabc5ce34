"""How much of a tier the measured rows cover: per model and task, the seeds each method (or ablation) has
been measured on. A tier too long for one sitting is run piece by piece into one directory; this is the
report's own account of which pieces are in, generated from the rows like every table (a hand-written list
goes stale)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from mixdpo.bench.quality_cases import QualityCase


def _key(case: dict[str, Any]) -> tuple[str, str, str, int]:
    """(model, task, what was trained: the ablation's name or the method, seed)."""
    return case["model"], case["task"], case.get("variant") or case["method"], int(case["seed"])


def coverage_markdown(rows: list[dict], planned: list[QualityCase], tier: str, command: str = "") -> str:
    """Which cases of ``planned`` (a tier's) ``rows`` measured without error: a summary line, then a table
    with a row per (model, task) and a column per method or ablation, each cell the seeds measured ("—":
    none yet; "n/a": the tier has no such case).

    A row outside the plan (another model or seed, run on request) is counted in the line, not the table.

    ``command``: the tier's command (``mixdpo bench quality --tier full``); when given, a last line says how
    to measure what is missing or, once every case is in, how to measure the tier again from scratch (an
    ``--update-benchmarks`` run keeps the published rows, so it would rerun nothing)."""
    keys = [_key(case.to_dict()) for case in planned]
    plan = set(keys)
    measured = {_key(row["case"]) for row in rows if row.get("error") is None}
    labels = list(dict.fromkeys(label for _, _, label, _ in keys))  # the plan's order
    cells: dict[tuple[str, str], dict[str, list[int]]] = defaultdict(dict)
    for model, task, label, seed in keys:
        seeds = cells[(model, task)].setdefault(label, [])
        if (model, task, label, seed) in measured:
            seeds.append(seed)
    inside, extra = len(plan & measured), len(measured - plan)
    line = f"{inside} of {len(plan)} cases of the {tier} tier are measured"
    line += f" (and {extra} beyond its plan: other models or seeds)." if extra else "."
    seeds = sorted({seed for *_, seed in keys})
    lines = [
        f"{line} Each cell: the seeds measured, of {', '.join(str(s) for s in seeds)}.",
        "",
        "| model | task | " + " | ".join(labels) + " |",
        "|---|---|" + "---|" * len(labels),
    ]
    for (model, task), by_label in cells.items():
        row = [
            "n/a" if label not in by_label else ", ".join(str(s) for s in sorted(by_label[label])) or "—"
            for label in labels
        ]
        lines.append(f"| {model} | {task} | " + " | ".join(row) + " |")
    rest = f"`{command} --update-benchmarks` measures the rest (cases measured with these settings are kept)."
    again = (
        f"Every case of the plan is measured. `{command} --output-dir <new folder>` measures the tier "
        "again from scratch (with `--update-benchmarks` it would keep the published rows and rerun none)."
    )
    if command:
        lines += ["", rest if inside < len(plan) else again]
    return "\n".join(lines) + "\n"
