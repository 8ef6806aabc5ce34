"""Held-out evaluation of a trained mixture, and the run report (DESIGN.md section 2 notation).

    result = evaluate_policy(policy, heldout, baseline=dpo_policy)     # plain JSON: eval.json
    print(format_comparison({"DPO (K=1)": result["baseline"], "MoE-DPO (K=2)": result}))
    write_report(run_dir, eval_result=result, metrics_path=run_dir / "metrics.jsonl", title="...")

Modules, in the order they run: ``scoring`` (the policy over the data, no gradient: rewards r_k and
routing weights w), ``metrics`` (pure math on those tensors), ``assignment`` (group recovery: ARI, NMI,
routing and oracle accuracy), ``predictions`` (the same per pair: JSON Lines for error analysis and paired
tests), ``evaluate`` (the two together), ``comparison`` (tables), ``curves`` and
``plots`` (PNGs), ``report`` (report.md).
"""

from mixdpo.evaluation.assignment import (
    clustering_scores,
    group_to_expert,
    oracle_accuracy,
    routing_accuracy,
)
from mixdpo.evaluation.comparison import comparison_rows, format_comparison, markdown_comparison
from mixdpo.evaluation.curves import plot_training_curves, read_metrics
from mixdpo.evaluation.evaluate import evaluate_policy, metrics_of
from mixdpo.evaluation.metrics import GROUP_KEYS, USER_KEYS, preference_metrics
from mixdpo.evaluation.plots import plot_expert_heatmap, plot_group_accuracy
from mixdpo.evaluation.predictions import pair_predictions, read_predictions, write_predictions
from mixdpo.evaluation.report import write_report
from mixdpo.evaluation.scoring import PairScores, score_pairs

__all__ = [
    "GROUP_KEYS",
    "USER_KEYS",
    "PairScores",
    "clustering_scores",
    "comparison_rows",
    "evaluate_policy",
    "format_comparison",
    "group_to_expert",
    "markdown_comparison",
    "metrics_of",
    "oracle_accuracy",
    "pair_predictions",
    "plot_expert_heatmap",
    "plot_group_accuracy",
    "plot_training_curves",
    "preference_metrics",
    "read_metrics",
    "read_predictions",
    "routing_accuracy",
    "score_pairs",
    "write_predictions",
    "write_report",
]
