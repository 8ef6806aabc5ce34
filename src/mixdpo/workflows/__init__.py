"""End-to-end workflows over a run directory; the CLI is a thin layer over these.

Run directory contract (other tools read these names)::

    <run>/config.yaml      the resolved config
    <run>/policy/          the trained mixture: MixturePolicy.from_pretrained(<run>/policy)
    <run>/metrics.jsonl    one JSON object per logging step
    <run>/eval.json        held-out evaluation (mixdpo.evaluation.evaluate_policy)
    <run>/eval_predictions.jsonl   the same per held-out pair (mixdpo.evaluation.pair_predictions)
    <run>/report.md        the report, with PNG plots next to it
    <run>/data_report.json rows read / left out, per split
    <run>/baseline/        plain DPO (K = 1) trained with the same budget, when ``baseline`` is on
"""

from mixdpo.workflows.train import PREDICTIONS_FILE, RunResult, load_run_policy, train_run

__all__ = ["PREDICTIONS_FILE", "RunResult", "load_run_policy", "train_run"]
