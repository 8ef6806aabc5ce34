"""``write_report``: a run's ``report.md`` with its plots, readable by someone new to mixtures.

Files written into ``run_dir`` (only those that have data):

- ``report.md``: the summary table (mixture and baseline side by side) and what each metric means;
- ``training_curves.png``: loss, accuracy, log-likelihood / ELBO, entropy, expert usage, gate weights;
- ``responsibilities_by_group.png``: mean responsibility q of each expert on each hidden group;
- ``gate_weights.png``: mean gate weight w per user (per group, or overall, when there are no users);
- ``accuracy_by_group.png``: held-out accuracy per group, mixture vs baseline.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mixdpo.evaluation.comparison import markdown_comparison
from mixdpo.evaluation.curves import plot_training_curves, read_metrics
from mixdpo.evaluation.plots import plot_expert_heatmap, plot_group_accuracy

REPORT_FILE = "report.md"

EXPLANATIONS = """\
**How to read this.** Every held-out pair has a prompt x, a preferred answer y+ and a rejected answer y-.
Each of the K experts k is a policy with an implicit reward r_k(x, y) = beta (log pi_k(y|x) - log
pi_ref(y|x)); its margin D_k = r_k(x, y+) - r_k(x, y-) is positive when the expert agrees with the
preference. The gate gives each pair routing weights w_k (they sum to 1) from the prompt and/or the user,
never from the answers.

- **held-out accuracy**: share of pairs where the mixture prefers y+, i.e. P = sum_k w_k sigmoid(D_k) > 1/2
  (the mixture-of-Bradley-Terry probability with the gate's routing).
- **reward accuracy**: share of pairs where the mixture reward r = log sum_k w_k exp(r_k) is higher for y+
  (TRL's `rewards/accuracies`).
- **mean log-likelihood**: mean log P; higher (closer to 0) is better, log 1/2 = -0.693 is a coin flip.
- **accuracy: <group>**: held-out accuracy on one hidden group (a group is a kind of user / preference;
  it is never shown to training). Plain DPO must compromise between groups that disagree.
- **ARI / NMI**: agreement between the hidden groups and the expert each pair is assigned to after seeing
  its answers (the largest responsibility q_k = w_k sigmoid(D_k) / P). 1 = every group has its own expert,
  0 = no relation. Not defined with fewer than two groups.
- **routing accuracy**: share of pairs the gate sends (largest w_k) to its group's expert (the expert with
  the largest mean responsibility on that group) - from the prompt and user alone.
- **oracle accuracy**: accuracy if each pair were scored by its group's expert alone: the best routing
  could do with these experts.
- **expert usage / gate weights**: mean responsibility q_k and mean routing weight w_k of each expert
  (expert 0 / expert 1 / ...). An expert with usage near 0 is unused ("collapsed").
"""


def _result_columns(
    eval_result: Mapping[str, Any], model_name: str | None, baseline_name: str | None
) -> dict[str, Mapping[str, Any]]:
    k = eval_result.get("num_experts")
    columns: dict[str, Mapping[str, Any]] = {model_name or f"mixture (K={k})": eval_result}
    baseline = eval_result.get("baseline")
    if baseline:
        columns[baseline_name or f"baseline (K={baseline.get('num_experts', '?')})"] = baseline
    return columns


def _image(alt: str, path: Path | None) -> list[str]:
    return [f"![{alt}]({path.name})", ""] if path is not None else []


def _routing_table(eval_result: Mapping[str, Any]) -> tuple[dict[str, list[float]], str, bool]:
    """(rows of mean gate weights, what a row is, sort rows?): per user, else per group, else overall."""
    if eval_result.get("gate_weights_by_user"):
        return dict(eval_result["gate_weights_by_user"]), "user", True
    if eval_result.get("gate_weights_by_group"):
        return dict(eval_result["gate_weights_by_group"]), "group", False
    weights = eval_result.get("gate_weights")
    return ({"all pairs": list(weights)} if weights else {}), "", False


def _plots(
    run_dir: Path,
    eval_result: Mapping[str, Any],
    columns: Mapping[str, Mapping[str, Any]],
    metrics_path: str | Path | None,
) -> list[str]:
    lines = ["## Plots", ""]
    if metrics_path is not None and Path(metrics_path).is_file():
        curves = plot_training_curves(read_metrics(metrics_path), run_dir / "training_curves.png")
        lines += ["### Training", ""]
        lines += _image("training curves", curves) or ["`metrics.jsonl` has no known metrics to plot.", ""]
    else:
        lines += ["No training metrics (`metrics.jsonl`) were found, so there are no training curves.", ""]

    by_group = eval_result.get("responsibilities_by_group")
    if by_group:
        path = plot_expert_heatmap(
            by_group,
            run_dir / "responsibilities_by_group.png",
            title="Which expert explains each group (mean responsibility q)",
            row_label="group",
            value_label="mean responsibility",
        )
        lines += [
            "### Responsibilities per group",
            "",
            "Each row sums to 1; a clean diagonal-like pattern"
            " (one bright cell per row, different columns) means the experts recovered the groups.",
            "",
        ]
        lines += _image("responsibilities per group", path)

    table, who, sort_rows = _routing_table(eval_result)
    if table:
        per = f"per {who}" if who else "over all pairs"
        path = plot_expert_heatmap(
            table,
            run_dir / "gate_weights.png",
            title=f"Gate routing weights {per} (mean w)",
            row_label=who or "pairs",
            value_label="mean gate weight",
            sort_rows=sort_rows,
        )
        lines += [f"### Gate weights {per}", "", "Where the gate sends pairs before it sees the answers."]
        lines += ["", *_image(f"gate weights {per}", path)]

    accuracy = plot_group_accuracy(columns, run_dir / "accuracy_by_group.png")
    if accuracy is not None:
        lines += ["### Accuracy per group", "", *_image("accuracy per group", accuracy)]
    return lines


def write_report(
    run_dir: str | Path,
    *,
    eval_result: Mapping[str, Any],
    metrics_path: str | Path | None,
    title: str,
    baseline_name: str | None = None,
    model_name: str | None = None,
) -> Path:
    """Write ``run_dir/report.md`` and its PNG plots; returns the path of ``report.md``.

    Args:
        run_dir: the run's directory (created if missing).
        eval_result: the dict of :func:`~mixdpo.evaluation.evaluate_policy` (its ``baseline`` entry, when
            not None, becomes the second column).
        metrics_path: the run's ``metrics.jsonl`` (None or a missing file: no training curves).
        title: the report's heading.
        baseline_name: column name of the baseline (default ``baseline (K=<its K>)``).
        model_name: column name of the mixture (default ``mixture (K=<K>)``).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    columns = _result_columns(eval_result, model_name, baseline_name)
    n, k = eval_result.get("num_pairs"), eval_result.get("num_experts")
    lines = [
        f"# {title}",
        "",
        f"Held-out evaluation on {n} preference pairs; the mixture has K = {k} experts.",
        "",
    ]
    lines += ["## Results", "", markdown_comparison(columns), ""]
    mapping = eval_result.get("group_to_expert")
    if mapping:
        pairs = ", ".join(f"{group} → expert {expert}" for group, expert in mapping.items())
        lines += [f"Group → expert (largest mean responsibility): {pairs}.", ""]
    lines += [EXPLANATIONS]
    lines += _plots(run_dir, eval_result, columns, metrics_path)
    path = run_dir / REPORT_FILE
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path
