"""End to end through the CLI: train -> eval -> generate -> personalize, and demo, on tiny random models."""

from __future__ import annotations

import json

import pytest
import yaml
from safetensors.torch import load_file

from mixdpo.cli.main import main
from mixdpo.evaluation import read_predictions

TINY = ["model=random:llama-tiny", "lora_r=4", "learning_rate=3e-3", "per_device_train_batch_size=8"]
TINY += ["logging_steps=2", "disable_tqdm=true", "max_length=256"]


def train_args(run_dir, small_task, *extra):
    return ["train", f"output_dir={run_dir}", f"train_file={small_task['train']}", *TINY, *extra]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, small_task):
    run_dir = tmp_path_factory.mktemp("run")
    args = train_args(run_dir, small_task, f"eval_file={small_task['eval']}", "gate=user", "max_steps=6")
    assert main([*args, "baseline=true"]) == 0
    return run_dir


def test_train_writes_the_run_directory_contract(trained_run):
    for name in ("config.yaml", "metrics.jsonl", "eval.json", "report.md", "data_report.json"):
        assert (trained_run / name).is_file(), name
    assert (trained_run / "policy" / "mixdpo_policy.json").is_file()
    records = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    assert any("em/elbo" in r and "rewards/accuracies" in r and "gate/weight_1" in r for r in records)
    result = json.loads((trained_run / "eval.json").read_text())
    for key in ("mixture_accuracy", "per_group_accuracy", "ari", "nmi", "routing_accuracy", "expert_usage"):
        assert key in result
    assert set(result["per_group_accuracy"]) == {"fans", "critics"}
    assert result["baseline"]["num_experts"] == 1  # baseline=true trained plain DPO
    # the same evaluation per pair, next to eval.json: it averages to the reported accuracy
    pairs = [json.loads(line) for line in (trained_run / "eval_predictions.jsonl").read_text().splitlines()]
    assert len(pairs) == result["num_pairs"]
    assert sum(p["correct"] for p in pairs) / len(pairs) == pytest.approx(result["mixture_accuracy"])
    assert (trained_run / "baseline" / "policy" / "mixdpo_policy.json").is_file()
    assert list(trained_run.glob("*.png"))


def test_eval_generate_and_personalize_on_the_trained_run(trained_run, small_task, capsys):
    out = trained_run / "heldout.json"
    per_pair = trained_run / "heldout-pairs.jsonl"
    code = main(["eval", str(trained_run), "--data", str(small_task["eval"]), "--out", str(out),
                 "--predictions", str(per_pair)])  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    assert result["num_pairs"] == 12
    pairs = [json.loads(line) for line in per_pair.read_text().splitlines()]
    assert [p["row"] for p in pairs] == list(range(1, 13))  # the data file's rows, in order
    assert sum(p["correct"] for p in pairs) / 12 == pytest.approx(result["mixture_accuracy"])
    assert {p["group"] for p in pairs} == set(result["per_group_accuracy"])
    assert f"per pair: {per_pair}" in capsys.readouterr().out

    capsys.readouterr()
    prompt = "User: review Dune\nAssistant:"
    code = main(["generate", str(trained_run), "--prompt", prompt, "--user", "user_01", "--routing", "top1",
                 "--max-new-tokens", "5", "--json", "--seed", "0"])  # fmt: skip
    assert code == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["expert"] in (0, 1)
    assert len(line["weights"]) == 2

    personal = trained_run / "personal"
    new = str(small_task["new_users"])
    code = main(["personalize", str(trained_run), "--data", new, "--eval-data", new, "--out", str(personal),
                 "--max-steps", "3"])  # fmt: skip
    assert code == 0
    summary = json.loads((personal / "personalize.json").read_text())
    assert summary["new_users"]
    per_pair = read_predictions(personal / "eval_predictions.jsonl")
    assert len(per_pair) == summary["eval"]["num_pairs"]
    assert sum(p["correct"] for p in per_pair) / len(per_pair) == pytest.approx(
        summary["eval"]["mixture_accuracy"]
    )
    assert summary["expert_parameters_trained"] == 0
    assert summary["parameters_per_new_user"] == 2
    assert summary["experts_scored_once"]  # frozen experts: looked up, not run in every step
    # no --learning-rate: the gate refits at the run's own gate rate, and the summary says which
    trained_with = yaml.safe_load((trained_run / "config.yaml").read_text())
    assert summary["learning_rate"] == pytest.approx(float(trained_with["gate_learning_rate"]))
    # The experts are untouched: the adapters in the personalised policy equal the original ones.
    for k in range(2):
        before = load_file(trained_run / "policy" / "experts" / f"expert_{k}" / "adapter_model.safetensors")
        after = load_file(personal / "policy" / "experts" / f"expert_{k}" / "adapter_model.safetensors")
        assert before.keys() == after.keys()
        assert all((before[n] == after[n]).all() for n in before)


def test_personalize_can_fine_tune_the_experts_instead(trained_run, small_task, capsys):
    """--train experts: the single-policy way to learn new users (experts move, the gate does not)."""
    out = trained_run / "tuned"
    new = str(small_task["new_users"])
    code = main(["personalize", str(trained_run), "--data", new, "--out", str(out), "--max-steps", "2",
                 "--train", "experts", "--learning-rate", "0.01"])  # fmt: skip
    assert code == 0
    assert "expert parameters trained, gate frozen" in capsys.readouterr().out
    summary = json.loads((out / "personalize.json").read_text())
    assert summary["trained"] == "experts"
    assert summary["gate_parameters_trained"] == 0
    assert summary["expert_parameters_trained"] > 0
    assert summary["parameters_per_new_user"] is None  # shared parameters, no per-user ones
    assert not summary["experts_scored_once"]
    assert summary["learning_rate"] == 0.01
    before = load_file(trained_run / "policy" / "experts" / "expert_0" / "adapter_model.safetensors")
    after = load_file(out / "policy" / "experts" / "expert_0" / "adapter_model.safetensors")
    assert any(not (before[n] == after[n]).all() for n in before)
    gate_before = load_file(trained_run / "policy" / "gate.safetensors")
    gate_after = load_file(out / "policy" / "gate.safetensors")
    assert gate_before.keys() == gate_after.keys()
    for n in gate_before:  # new users' rows were appended (from the fallback); the trained rows stay
        assert (gate_after[n][: gate_before[n].shape[0]] == gate_before[n]).all()


def test_demo_runs_end_to_end_on_a_tiny_model(tmp_path, capsys):
    code = main(
        ["demo", "--model", "random:llama-tiny", "--out", str(tmp_path), "max_steps=4", "disable_tqdm=true"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "DPO (K=1)" in printed
    assert "MoE-DPO (K=2)" in printed
    summary = json.loads((tmp_path / "demo.json").read_text())
    assert "critics" in summary["table"]
    assert (tmp_path / "moe-dpo" / "report.md").is_file()


def test_eval_can_refuse_users_unseen_in_training(trained_run, small_task, capsys):
    code = main(["eval", str(trained_run), "--data", str(small_task["new_users"]), "--known-users-only"])
    err = capsys.readouterr().err
    assert code == 2
    assert str(small_task["new_users"]) in err
    assert "row 1" in err
    assert "user_id" in err
