"""Tables, target checks and plots of ``mixdpo bench quality``: mean and spread over seeds per (model, task,
method), the issue's targets with their measured values, and the ``BENCHMARKS.md`` section."""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixdpo.bench.quality_cases import ALL_METHODS
from mixdpo.bench.verdict import compare, mean_spread, paired_difference, seed_outcomes

SECTION_BEGIN = "<!-- mixdpo bench quality: begin -->"
SECTION_END = "<!-- mixdpo bench quality: end -->"


def fmt_pair(pair: tuple[float | None, float | None], pct: bool = True) -> str:
    mean, spread = pair
    if mean is None:
        return "—"
    if pct:
        return f"{100 * mean:.1f} ± {100 * spread:.1f}"
    return f"{mean:.2f} ± {spread:.2f}"


def grouped(rows: list[dict]) -> dict[tuple[str, str, str], list[dict]]:
    """Rows (without errors) by (model, task, method), seeds together."""
    out: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for row in rows:
        if row.get("error") is None:
            case = row["case"]
            out[(case["model"], case["task"], case["method"])].append(row)
    return out


def generation_gain(row: dict, source: str, key: str) -> float | None:
    """Mean reward ``key`` of ``source``'s generations minus the reference model's."""
    gen = row.get("generation") or {}
    if source not in gen or "reference" not in gen or key not in gen[source]:
        return None
    return gen[source][key] - gen["reference"][key]


def accuracy_table(rows: list[dict]) -> str:
    """Per model and task: each method's held-out accuracy, per-group accuracies, ARI, routing accuracy."""
    lines = [
        "| model | task | method | K | seeds | mixture accuracy % | per-group accuracy % | ARI "
        "| routing accuracy % |",
        "|---|---|---|---:|---:|---:|---|---:|---:|",
    ]
    for (model, task, method), runs in sorted(grouped(rows).items(), key=_order):
        single = runs[0]["num_experts"] == 1  # every pair goes to the one expert: ARI and routing say nothing
        groups = sorted({g for r in runs for g in (r["eval"].get("per_group_accuracy") or {})})
        per_group = ", ".join(
            f"{g} {fmt_pair(mean_spread([(r['eval'].get('per_group_accuracy') or {}).get(g) for r in runs]))}"
            for g in groups
        )
        cells = [
            model, task, method, runs[0]["num_experts"], len(runs),
            fmt_pair(mean_spread([r["eval"].get("mixture_accuracy") for r in runs])),
            per_group or "—",
            "—" if single else fmt_pair(mean_spread([r["eval"].get("ari") for r in runs]), pct=False),
            "—" if single else fmt_pair(mean_spread([r["eval"].get("routing_accuracy") for r in runs])),
        ]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def generation_table(rows: list[dict]) -> str:
    """Per model and task: each generation source's reward gain over the reference model, per metric."""
    lines = ["| model | task | method | source | reward gain over the reference model (mean ± spread) |",
             "|---|---|---|---|---|"]  # fmt: skip
    for (model, task, method), runs in sorted(grouped(rows).items(), key=_order):
        gens = [r["generation"] for r in runs if r.get("generation")]
        if not gens:
            continue
        for source in [s for s in gens[0] if s != "reference"]:
            keys = sorted(gens[0][source])
            gains = ", ".join(
                f"{key} {fmt_pair(mean_spread([generation_gain(r, source, key) for r in runs]), pct=False)}"
                for key in keys
            )
            lines.append(f"| {model} | {task} | {method} | {source} | {gains} |")
    return "\n".join(lines) + "\n"


# the mixture each task is built for, compared with every single-policy method
MIXTURE_FOR_TASK = {"personas": "moe-dpo", "cross-domain": "moe-dpo", "multi-reward": "mix-dpo"}
COMPARED = ("dpo", "trl-dpo", "wide-dpo", "cond-dpo", "oracle-dpo")


def baseline_table(rows: list[dict]) -> str:
    """Per model and task: the task's mixture (MoE-DPO, or Mix-DPO on multi-reward) against each single-
    policy method on held-out accuracy and worst-group accuracy, with a sentence saying who wins."""
    by_case = grouped(rows)
    lines = [
        "| model | task | mixture vs baseline | accuracy % (mixture / baseline) | worst group % (mixture / "
        "baseline) | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for model, task in sorted({(m, t) for m, t, _ in by_case}):
        mixture = MIXTURE_FOR_TASK[task]
        mine = by_case.get((model, task, mixture), [])
        if not mine:
            continue
        for baseline in COMPARED:
            theirs = by_case.get((model, task, baseline), [])
            if not theirs:
                continue
            cells, words = [], []
            for label, (cell, outcome, delta) in zip(LABELS, versus(mine, theirs), strict=True):
                cells.append(cell)
                words.append(f"{outcome} on {label}" + ("" if delta is None else f" ({delta:+.1f} points)"))
            sentence = f"{mixture} {words[0]}, {words[1]}"
            lines.append(
                f"| {model} | {task} | {mixture} vs {baseline} | {cells[0]} | {cells[1]} | {sentence} |"
            )
    return "\n".join(lines) + "\n"


LABELS = ("accuracy", "the worst group")  # what versus() compares, in order


def versus(mine: list[dict], theirs: list[dict]) -> list[tuple[str, str, float | None]]:
    """Two methods' rows (one per seed) compared on held-out accuracy, then on the worst group: for each,
    ("mine mean ± spread / theirs mean ± spread", "wins" | "ties" | "loses", difference in points) by
    :func:`~mixdpo.bench.verdict.compare`, paired on accuracy where every row kept its pairs' outcomes."""
    out = []
    for get, count, paired in (
        (_accuracy, _pairs, paired_outcomes(mine, theirs)),
        (_worst_group, _worst_group_pairs, None),  # the worst group can differ from row to row
    ):
        a, b = [get(r) for r in mine], [get(r) for r in theirs]
        outcome, delta = compare(a, b, [count(r) for r in mine], [count(r) for r in theirs], paired)
        out.append((f"{fmt_pair(mean_spread(a))} / {fmt_pair(mean_spread(b))}", outcome, delta))
    return out


def paired_outcomes(mine: list[dict], theirs: list[dict]) -> list[tuple[str, str]] | None:
    """Per seed, the two methods' held-out outcome strings (``pair_correct``), for a paired test; None unless
    both measured the same seeds and every row kept its outcomes (rows measured before they were kept)."""
    # one row per seed: a case is measured once
    by_seed = [{r["case"]["seed"]: r["eval"].get("pair_correct") for r in rows} for rows in (mine, theirs)]
    return seed_outcomes(*by_seed)


def _accuracy(row: dict) -> float | None:
    return row["eval"].get("mixture_accuracy")


def _worst_group(row: dict) -> float | None:
    per_group = row["eval"].get("per_group_accuracy") or {}
    return min(per_group.values()) if per_group else None


def _pairs(row: dict) -> int | None:
    """The held-out pairs ``row``'s accuracy rests on (rows written before ``num_pairs`` was stored: the
    evaluation file's pairs that were not left out)."""
    if row["eval"].get("num_pairs"):
        return row["eval"]["num_pairs"]
    read = (row.get("pairs") or {}).get("eval") or {}
    return read["read"] - read.get("left_out", 0) if "read" in read else None


def _worst_group_pairs(row: dict) -> float | None:
    """The pairs of ``row``'s worst group; for rows written before ``per_group_pairs`` was stored, the
    held-out pairs shared equally among the groups (an approximation, said so in the report)."""
    per_group = row["eval"].get("per_group_accuracy") or {}
    if not per_group:
        return None
    worst = min(per_group, key=per_group.__getitem__)
    counts = row["eval"].get("per_group_pairs") or {}
    if worst in counts:
        return counts[worst]
    total = _pairs(row)
    return None if total is None else total / len(per_group)


def _order(item: tuple[tuple[str, str, str], Any]) -> tuple:
    (model, task, method), _ = item
    return (model, task, ALL_METHODS.index(method) if method in ALL_METHODS else 99)


@dataclass(frozen=True)
class QualityTarget:
    target: str
    measured: str
    met: bool | None
    context: bool = False  # a reference row (plain DPO, the oracle), not a target

    def line(self) -> str:
        verdict = (
            "context" if self.context else {True: "met", False: "**missed**", None: "not measured"}[self.met]
        )
        return f"| {self.target} | {self.measured} | {verdict} |"


def check_targets(rows: list[dict]) -> list[QualityTarget]:
    """The issue's targets per model: MoE-DPO per-group accuracy, ARI and routing on ``personas`` and
    ``cross-domain`` (and plain DPO's accuracy next to the majority share), and the multi-reward
    generation target: on >= 2 of the 3 axes, Mix-DPO's expert for the axis (``group_to_expert``) raises
    the axis's reward of generated text over the reference model (gain > 0) and by more than DPO does."""
    by_case = grouped(rows)
    models = sorted({model for model, _, _ in by_case})
    checks = []
    for model in models:
        for task in ("personas", "cross-domain"):
            moe, dpo = by_case.get((model, task, "moe-dpo"), []), by_case.get((model, task, "dpo"), [])
            if moe:
                worst = [min((r["eval"].get("per_group_accuracy") or {"?": 0.0}).values()) for r in moe]
                ari = [r["eval"].get("ari") for r in moe]
                routing = [r["eval"].get("routing_accuracy") for r in moe]
                m_worst, m_ari, m_routing = (
                    mean_spread(worst)[0],
                    mean_spread(ari)[0],
                    mean_spread(routing)[0],
                )
                checks.append(QualityTarget(
                    f"{model} · {task}: MoE-DPO worst-group accuracy ≥ 95%, ARI ≥ 0.9, routing ≥ 95%",
                    f"{fmt_pair(mean_spread(worst))} %, ARI {fmt_pair(mean_spread(ari), pct=False)}, "
                    f"routing {fmt_pair(mean_spread(routing))} %",
                    None if None in (m_worst, m_ari, m_routing)
                    else bool(m_worst >= 0.95 and m_ari >= 0.9 and m_routing >= 0.95),
                ))  # fmt: skip
            if dpo:
                acc = mean_spread([r["eval"].get("mixture_accuracy") for r in dpo])
                per = [r["eval"].get("per_group_accuracy") or {} for r in dpo]
                worst = mean_spread([min(p.values()) if p else None for p in per])
                checks.append(QualityTarget(
                    f"{model} · {task}: plain DPO (stays near the majority share)",
                    f"accuracy {fmt_pair(acc)} %, worst group {fmt_pair(worst)} %", None, context=True,
                ))  # fmt: skip
            oracle = by_case.get((model, task, "oracle-dpo"), [])
            if oracle:
                acc = mean_spread([_accuracy(r) for r in oracle])
                worst = mean_spread([_worst_group(r) for r in oracle])
                checks.append(QualityTarget(
                    f"{model} · {task}: per-group oracle DPO (trained with the labels: about the most a "
                    "mixture can reach here)",
                    f"accuracy {fmt_pair(acc)} %, worst group {fmt_pair(worst)} %", None, context=True,
                ))  # fmt: skip
        mix, dpo = (
            by_case.get((model, "multi-reward", "mix-dpo"), []),
            by_case.get((model, "multi-reward", "dpo"), []),
        )
        if mix and dpo:
            checks.append(steering_target(model, mix, dpo))
    return checks


def _prompt_rewards(rows: list[dict], source_of, axis: str) -> list[float] | None:
    """Per-prompt rewards of ``axis`` from ``source_of(row)`` in every row, concatenated over the rows
    (seeds); None when a row did not store them (rows written before per-prompt rewards were kept)."""
    out: list[float] = []
    for row in rows:
        rewards = (row.get("generation_rewards") or {}).get(source_of(row) or "", {}).get(axis)
        if rewards is None:
            return None
        out += rewards
    return out


def _axis_expert(row: dict, axis: str) -> str | None:
    """The source of the Mix-DPO expert that took the axis's pairs (``group_to_expert``), if any."""
    k = (row["eval"].get("group_to_expert") or {}).get(axis)
    return None if k is None else f"expert:{k}"


def steering_target(model: str, mix: list[dict], dpo: list[dict]) -> QualityTarget:
    """Multi-reward: on >= 2 of the 3 axes Mix-DPO's expert for the axis raises its reward over the reference
    model's and by more than DPO does (means over seeds). Where every row kept per-prompt rewards, both
    differences must also be beyond noise: paired over the same prompts and seeds, |mean| > 1.96 standard
    errors (:func:`paired_difference`)."""
    seeds = sorted({r["case"]["seed"] for r in mix} & {r["case"]["seed"] for r in dpo})
    paired_mix = sorted((r for r in mix if r["case"]["seed"] in seeds), key=lambda r: r["case"]["seed"])
    paired_dpo = sorted((r for r in dpo if r["case"]["seed"] in seeds), key=lambda r: r["case"]["seed"])
    wins, shown, checked = 0, [], True
    for axis in ("sentiment", "readability", "length"):
        expert = functools.partial(_axis_expert, axis=axis)
        own = [None if expert(r) is None else generation_gain(r, expert(r), axis) for r in mix]
        base = mean_spread([generation_gain(r, "expert:0", axis) for r in dpo])[0]
        mine = mean_spread(own)[0]
        if mine is None or base is None:
            continue
        met = mine > 0 and mine > base  # raises the axis, and by more than DPO
        text = f"{axis} {mine:+.2f} vs {base:+.2f}"
        ours = _prompt_rewards(paired_mix, expert, axis)
        theirs = _prompt_rewards(paired_dpo, lambda r: "expert:0", axis)
        reference = _prompt_rewards(paired_mix, lambda r: "reference", axis)
        usable = None not in (ours, theirs, reference) and len(ours) == len(theirs)
        over_dpo = paired_difference(ours, theirs) if usable else None
        over_ref = paired_difference(ours, reference) if usable else None
        if over_dpo is None or over_ref is None:
            checked = False
        else:
            met = met and over_dpo[0] > over_dpo[1] and over_ref[0] > over_ref[1]
            text += (f" (paired over {len(ours)} prompts: {over_dpo[0]:+.2f} ± {over_dpo[1]:.2f} vs DPO, "
                     f"{over_ref[0]:+.2f} ± {over_ref[1]:.2f} over the reference)")  # fmt: skip
        wins += met
        shown.append(text)
    noise = "" if checked else " (no noise check: rows without per-prompt rewards)"
    return QualityTarget(
        f"{model} · multi-reward: Mix-DPO's expert for an axis raises it more than DPO (≥ 2 of 3 axes)",
        ("; ".join(shown) or "—") + (noise if shown else ""),
        None if not shown else wins >= 2,
    )


def targets_table(checks: list[QualityTarget]) -> str:
    return (
        "| target | measured (mean ± spread over seeds) | verdict |\n|---|---|---|\n"
        + "\n".join(c.line() for c in checks)
        + "\n"
    )


def plot_accuracy(rows: list[dict], path: Path) -> Path | None:
    """One panel per (model, task): per-group held-out accuracy of each method (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_case = grouped(rows)
    panels = sorted({(model, task) for model, task, _ in by_case})
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (model, task) in zip(axes[0], panels, strict=True):
        methods = [m for m in ALL_METHODS if (model, task, m) in by_case]
        groups = sorted({g for m in methods for r in by_case[(model, task, m)]
                         for g in (r["eval"].get("per_group_accuracy") or {})})  # fmt: skip
        width = 0.8 / max(len(groups), 1)
        for j, group in enumerate(groups):
            values = []
            for m in methods:
                accs = [
                    (r["eval"].get("per_group_accuracy") or {}).get(group) for r in by_case[(model, task, m)]
                ]
                values.append(mean_spread(accs)[0] or 0.0)
            ax.bar([i + j * width for i in range(len(methods))], values, width, label=group)
        ax.set_xticks([i + width * (len(groups) - 1) / 2 for i in range(len(methods))], methods, rotation=30,
                      ha="right", fontsize=7)  # fmt: skip
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{task}\n{model}", fontsize=9)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("held-out accuracy per hidden group")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
