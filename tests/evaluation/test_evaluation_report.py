"""report.md, its PNG plots and the terminal comparison table, from synthetic results (no models)."""

from __future__ import annotations

import json

import pytest

from mixdpo.evaluation import format_comparison, markdown_comparison, read_metrics, write_report
from mixdpo.evaluation.curves import plot_training_curves

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

MIXTURE = {
    "num_pairs": 40,
    "num_experts": 2,
    "mixture_accuracy": 0.875,
    "mixture_log_likelihood": -0.412,
    "reward_accuracy": 0.85,
    "per_expert_accuracy": [0.55, 0.6],
    "expert_usage": [0.48, 0.52],
    "gate_weights": [0.5, 0.5],
    "per_group_accuracy": {"concise": 0.9, "verbose": 0.85},
    "per_group_expert_accuracy": {"concise": [0.95, 0.2], "verbose": [0.15, 0.9]},
    "ari": 0.734,
    "nmi": 0.69,
    "group_to_expert": {"concise": 0, "verbose": 1},
    "routing_accuracy": 0.8,
    "oracle_accuracy": 0.925,
    "responsibilities_by_group": {"concise": [0.9, 0.1], "verbose": [0.12, 0.88]},
    "gate_weights_by_group": {"concise": [0.8, 0.2], "verbose": [0.25, 0.75]},
    "per_user_accuracy": {f"user{i}": 0.8 for i in range(6)},
    "gate_weights_by_user": {f"user{i}": [0.9, 0.1] if i % 2 else [0.2, 0.8] for i in range(6)},
    "baseline": {
        "num_experts": 1,
        "mixture_accuracy": 0.6,
        "mixture_log_likelihood": -0.66,
        "reward_accuracy": 0.6,
        "per_group_accuracy": {"concise": 0.95, "verbose": 0.25},
    },
}


def write_metrics(path, *, broken_last_line: bool = True):
    records = []
    for step in range(0, 50, 5):
        records.append(
            {
                "step": step,
                "loss": 0.7 - step / 100,
                "rewards/accuracies": 0.5 + step / 120,
                "rewards/margins": step / 50,
                "em/elbo": -0.8 + step / 100,
                "em/log_likelihood": -0.7 + step / 120,
                "em/entropy": 0.69 - step / 80,
                "em/usage_0": 0.5 + step / 200,
                "em/usage_1": 0.5 - step / 200,
                "gate/weight_0": 0.5,
                "gate/weight_1": 0.5,
                "learning_rate": 1e-4,
            }
        )
        if step % 20 == 0:
            records.append({"step": step, "eval_loss": 0.72 - step / 110, "eval_rewards/accuracies": 0.55})
    text = "".join(json.dumps(r) + "\n" for r in records)
    path.write_text(text + ('{"step": 50, "loss"' if broken_last_line else ""))
    return records


def png_ok(path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size < 300_000


def test_report_has_the_table_explanations_and_valid_pngs(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    write_metrics(metrics)
    report = write_report(
        tmp_path / "run", eval_result=MIXTURE, metrics_path=metrics, title="Two groups", baseline_name="DPO"
    )
    assert report == tmp_path / "run" / "report.md"
    text = report.read_text()
    assert text.startswith("# Two groups\n")
    assert "| metric | mixture (K=2) | DPO |" in text
    assert "| held-out accuracy | 87.5% | 60.0% |" in text
    assert "| accuracy: verbose | 85.0% | 25.0% |" in text
    assert "| ARI | 0.734 | - |" in text
    assert "| routing accuracy | 80.0% | - |" in text
    assert "| expert usage | 0.48 / 0.52 | - |" in text
    assert "concise → expert 0, verbose → expert 1" in text
    assert "**routing accuracy**" in text
    for name in ("training_curves", "responsibilities_by_group", "gate_weights", "accuracy_by_group"):
        png = tmp_path / "run" / f"{name}.png"
        assert png_ok(png), name
        assert f"]({name}.png)" in text
    assert "Gate weights per user" in text


def test_report_without_groups_users_metrics_or_baseline(tmp_path):
    result = {key: value for key, value in MIXTURE.items() if key in ("num_pairs", "num_experts")}
    result.update(mixture_accuracy=0.7, reward_accuracy=0.7, mixture_log_likelihood=-0.6)
    result.update(expert_usage=[0.5, 0.5], gate_weights=[0.3, 0.7], baseline=None, ari=None)
    report = write_report(tmp_path, eval_result=result, metrics_path=tmp_path / "missing.jsonl", title="T")
    text = report.read_text()
    assert "| metric | mixture (K=2) |" in text
    assert "ARI" not in text.split("**How to read this.**")[0]  # no groups: no ARI row
    assert "no training curves" in text
    assert not (tmp_path / "training_curves.png").exists()
    assert not (tmp_path / "accuracy_by_group.png").exists()
    assert png_ok(tmp_path / "gate_weights.png")
    assert "Gate weights over all pairs" in text


def test_metrics_reader_skips_a_cut_line_and_curves_plot_only_what_exists(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    records = write_metrics(metrics)
    assert read_metrics(metrics) == records
    assert plot_training_curves([{"step": 1, "learning_rate": 0.1}], tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
    path = plot_training_curves([{"step": 1, "loss": 0.5}, {"loss": 0.4}], tmp_path / "loss.png")
    assert png_ok(path)


def test_format_comparison_is_aligned_and_has_the_numbers():
    table = format_comparison({"DPO (K=1)": MIXTURE["baseline"], "MoE-DPO (K=2)": MIXTURE})
    lines = table.splitlines()
    assert lines[0].split() == ["metric", "DPO", "(K=1)", "MoE-DPO", "(K=2)"]
    labels = [line[: line.index("  ")] for line in lines[1:]]
    assert labels == [
        "held-out accuracy",
        "accuracy: concise",
        "accuracy: verbose",
        "ARI",
        "routing accuracy",
    ]
    assert lines[1].split()[-2:] == ["60.0%", "87.5%"]
    assert lines[3].split()[-2:] == ["25.0%", "85.0%"]
    assert lines[4].split()[-2:] == ["-", "0.734"]
    assert lines[5].split()[-2:] == ["-", "80.0%"]
    assert len({len(line) for line in lines}) == 1  # right-aligned columns: every line as wide
    with pytest.raises(ValueError, match="no results"):
        format_comparison({})


def test_markdown_comparison_escapes_pipes():
    table = markdown_comparison({"a|b": {"mixture_accuracy": 0.5}})
    assert table.splitlines()[0] == "| metric | a\\|b |"
    assert "| held-out accuracy | 50.0% |" in table
