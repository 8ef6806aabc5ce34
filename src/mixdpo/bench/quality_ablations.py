"""The report of ``mixdpo bench quality --suite ablations``: one row per ablation of MoE-DPO on the ablation
task (mean ± spread over seeds), how it compares with the base case, and a plot."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from mixdpo.bench.quality_cases import ABLATION_TASK, ABLATIONS, MOE_GATE
from mixdpo.bench.quality_report import fmt_pair, versus
from mixdpo.bench.verdict import TIE_RULE, mean_spread

_GROUPS = {"personas": "the fans and the critics", "cross-domain": "movie and book prompts"}[ABLATION_TASK]
SECTION_BEGIN = "<!-- mixdpo bench quality ablations: begin -->"
SECTION_END = "<!-- mixdpo bench quality ablations: end -->"

CHANGES = {
    "base": "K = 2 (the hidden groups), soft E-step, LoRA experts, symmetry breaking on",
    "K=1": "one expert (plain DPO with the same budget)",
    "K=4": "4 experts",
    "K=8": "8 experts",
    "hard E-step": "hard (argmax) responsibilities throughout",
    "gumbel E-step": "responsibilities sampled by Gumbel-softmax",
    "heads backend": "shared trunk + K copies of the top blocks (4 and lr 1e-4 on pretrained models)",
    "independent backend": "K full models (lr 1e-5 on pretrained models)",
    "no symmetry breaking": "init_noise 0 and no hard warm-up (LoRA experts still differ in their random A)",
    "embedding gate": "the prompt gate reads the prompt's mean-pooled token embeddings instead of the final "
    "hidden state",
}


def by_variant(rows: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """Rows without errors by (model, variant), seeds together, in :data:`ABLATIONS` order."""
    out: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        if row.get("error") is None and row["case"].get("variant"):
            out[(row["case"]["model"], row["case"]["variant"])].append(row)
    order = list(ABLATIONS)
    return dict(sorted(out.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1]))))


def _worst(row: dict) -> float | None:
    per_group = row["eval"].get("per_group_accuracy") or {}
    return min(per_group.values()) if per_group else None


def _against_base(runs: list[dict], base: list[dict]) -> str:
    """The ablation against the base case on accuracy and on the worst group, with the main table's verdict
    rule (:func:`~mixdpo.bench.quality_report.versus`: paired on accuracy where both rows kept outcomes)."""
    said = [f"{outcome} ({delta:+.1f})" for _, outcome, delta in versus(runs, base) if delta is not None]
    return ", ".join(said) or "—"


def ablation_table(rows: list[dict]) -> str:
    """Per model and ablation: K, held-out mixture and worst-group accuracy, ARI, routing, wall time, and
    how the ablation compares with the base case (wins / ties / loses and the difference in points, on
    accuracy and on the worst group)."""
    groups = by_variant(rows)
    lines = [
        "| model | ablation | what changes | K | seeds | mixture accuracy % | worst-group accuracy % "
        "| vs base: accuracy, worst group (points) | ARI | routing accuracy % | wall s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (model, variant), runs in groups.items():
        worst = mean_spread([_worst(r) for r in runs])
        base = groups.get((model, "base"), [])
        verdict = _against_base(runs, base) if variant != "base" and base else "—"
        single = runs[0]["num_experts"] == 1
        cells = [
            model, variant, CHANGES.get(variant, ""), runs[0]["num_experts"], len(runs),
            fmt_pair(mean_spread([r["eval"].get("mixture_accuracy") for r in runs])), fmt_pair(worst),
            verdict,
            "—" if single else fmt_pair(mean_spread([r["eval"].get("ari") for r in runs]), pct=False),
            "—" if single else fmt_pair(mean_spread([r["eval"].get("routing_accuracy") for r in runs])),
            f"{mean_spread([r.get('wall_s') for r in runs])[0]:.0f}",
        ]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def plot_ablations(rows: list[dict], path: Path) -> Path | None:
    """One panel per model: worst-group held-out accuracy and ARI of each ablation (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = by_variant(rows)
    models = list(dict.fromkeys(model for model, _ in groups))
    if not models:
        return None
    fig, axes = plt.subplots(1, len(models), figsize=(7.0 * len(models), 3.6), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        variants = [v for m, v in groups if m == model]
        worst = [mean_spread([_worst(r) for r in groups[(model, v)]])[0] or 0.0 for v in variants]
        ari = [mean_spread([r["eval"].get("ari") for r in groups[(model, v)]])[0] or 0.0 for v in variants]
        positions = range(len(variants))
        ax.bar([i - 0.2 for i in positions], worst, 0.4, label="worst-group accuracy")
        ax.bar([i + 0.2 for i in positions], ari, 0.4, label="ARI")
        ax.set_xticks(list(positions), variants, rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"MoE-DPO ablations on {ABLATION_TASK}\n{model}", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def ablations_markdown(document: dict[str, Any], commands: str, image: str | None) -> str:
    """The ablation report: how it was made, the table, the plot."""
    s = document["settings"]
    return (
        f"## Quality ablations: MoE-DPO on {ABLATION_TASK}, one thing changed at a time "
        f"({document['tier']} tier)\n\n"
        f"{commands} ({document['date']}, wall time {document['wall_s'] / 60:.1f} min summed over the "
        f"cases)\n\nHardware and versions: {document['hardware']}.\n\n"
        f"Models {', '.join(f'`{m}`' for m in document['models'])}; seeds {document['seeds']}; every case "
        f"trains {s['max_steps']} steps of {s['batch']} pairs with beta={s['beta']} (learning rate "
        f"{s['learning_rate']}, {s['random_learning_rate']} for random models, unless the ablation says "
        f"otherwise) with the {MOE_GATE[ABLATION_TASK]} gate, and is evaluated on held-out pairs (no "
        f"generation). *Worst-group accuracy* is the lowest accuracy over the hidden groups ({_GROUPS}: a "
        "single policy that follows one group's preference loses on the other's). *vs base*: the ablation "
        f"against the base case of the same model and seeds, on accuracy then the worst group. {TIE_RULE}\n\n"
        f"{ablation_table(document['rows'])}\n" + (f"![ablations]({image})\n" if image else "")
    )
