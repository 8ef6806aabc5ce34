"""The quality benchmark's arithmetic and tables on hand-made rows: mean and spread over seeds, gains over
the reference model, the targets' verdicts, the section replacement, and the tiers' case lists."""

from __future__ import annotations

import statistics

import pytest

from mixdpo.bench.quality import training_options
from mixdpo.bench.quality_ablations import ablation_table, plot_ablations
from mixdpo.bench.quality_cases import (
    ABLATIONS,
    ALL_METHODS,
    METHODS,
    TASKS,
    QualityCase,
    QualitySettings,
    select,
    tier,
)
from mixdpo.bench.quality_report import (
    accuracy_table,
    check_targets,
    generation_gain,
    generation_table,
    mean_spread,
    plot_accuracy,
)
from mixdpo.bench.quality_suite import report_markdown
from mixdpo.errors import ConfigError


def _row(task, method, seed, acc, per_group, ari=None, routing=None, generation=None, mapping=None, k=2):
    return {
        "case": {"task": task, "method": method, "model": "random:llama-1m", "seed": seed},
        "num_experts": 1 if method == "dpo" else k,
        "gate": "user",
        "eval": {
            "mixture_accuracy": acc,
            "per_group_accuracy": per_group,
            "ari": ari,
            "routing_accuracy": routing,
            "group_to_expert": mapping,
        },
        "generation": generation,
        "wall_s": 1.0,
        "learning_rate": 3e-3,  # what every tier trains random models at
    }


def test_mean_spread_is_the_sample_statistics():
    assert mean_spread([0.5, 0.7, None, 0.9]) == pytest.approx((0.7, statistics.stdev([0.5, 0.7, 0.9])))
    assert mean_spread([0.4]) == (0.4, 0.0)
    assert mean_spread([None]) == (None, None)


def test_targets_on_hand_made_rows():
    rows = [
        _row("personas", "moe-dpo", 0, 0.98, {"fans": 0.99, "critics": 0.96}, ari=1.0, routing=1.0),
        _row("personas", "moe-dpo", 1, 0.97, {"fans": 0.99, "critics": 0.94}, ari=0.9, routing=0.98),
        _row("personas", "dpo", 0, 0.66, {"fans": 1.0, "critics": 0.0}),
        _row("cross-domain", "moe-dpo", 0, 0.9, {"movies-concise": 0.99, "books-detailed": 0.8}, 0.5, 0.7),
        _row("personas", "oracle-dpo", 0, 0.62, {"fans": 0.6, "critics": 0.65}),
    ]
    checks = {c.target: c for c in check_targets(rows)}
    personas = checks[
        "random:llama-1m · personas: MoE-DPO worst-group accuracy ≥ 95%, ARI ≥ 0.9, routing ≥ 95%"
    ]
    assert personas.met is True  # worst groups 0.96 and 0.94: mean 0.95
    assert personas.measured.startswith("95.0 ± 1.4 %")
    cross = checks[
        "random:llama-1m · cross-domain: MoE-DPO worst-group accuracy ≥ 95%, ARI ≥ 0.9, routing ≥ 95%"
    ]
    assert cross.met is False
    dpo = checks["random:llama-1m · personas: plain DPO (stays near the majority share)"]
    assert dpo.met is None
    assert "worst group 0.0 ± 0.0 %" in dpo.measured
    assert dpo.line().endswith("| context |")
    oracle = next(c for c in checks.values() if "per-group oracle DPO" in c.target)
    assert oracle.measured == "accuracy 62.0 ± 0.0 %, worst group 60.0 ± 0.0 %"
    assert oracle.context


def test_multi_reward_target_uses_each_axis_own_expert():
    ref = {"sentiment": 0.0, "readability": 50.0, "length": 20.0}

    def gen(**experts):
        return {"reference": ref, **{f"expert:{k[1:]}": v for k, v in experts.items()}}

    mapping = {"sentiment": 2, "readability": 0, "length": 1}
    mix = _row("multi-reward", "mix-dpo", 0, 0.7, {}, k=3, mapping=mapping,
               generation=gen(e0={"sentiment": 0.0, "readability": 60.0, "length": 20.0},
                              e1={"sentiment": 0.0, "readability": 50.0, "length": 21.0},
                              e2={"sentiment": 0.5, "readability": 50.0, "length": 20.0}))  # fmt: skip
    dpo = _row("multi-reward", "dpo", 0, 0.6, {},
               generation=gen(e0={"sentiment": 0.2, "readability": 55.0, "length": 25.0}))  # fmt: skip
    assert generation_gain(mix, "expert:2", "sentiment") == pytest.approx(0.5)
    (check,) = check_targets([mix, dpo])
    # sentiment +0.5 vs +0.2 and readability +10 vs +5 win; length +1 vs +5 loses: 2 of 3
    assert check.met is True
    worse = dict(dpo, generation=gen(e0={"sentiment": -0.5, "readability": 40.0, "length": 10.0}))
    mix_flat = dict(mix, generation=gen(e0=ref, e1=ref, e2={**ref, "sentiment": 0.5}))
    (flat,) = check_targets([mix_flat, worse])
    assert flat.met is False  # 0.0 beats DPO's losses but raises nothing: only sentiment counts
    assert check.measured == ("sentiment +0.50 vs +0.20; readability +10.00 vs +5.00; length +1.00 vs +5.00 "
                              "(no noise check: rows without per-prompt rewards)")  # fmt: skip
    line = (
        "| random:llama-1m | multi-reward | mix-dpo | expert:2 "
        "| length 0.00 ± 0.00, readability 0.00 ± 0.00, sentiment 0.50 ± 0.00 |"
    )
    assert line in generation_table([mix, dpo])


def test_tables_report_and_plot(tmp_path):
    rows = [
        _row("personas", "dpo", 0, 0.66, {"fans": 1.0, "critics": 0.0}),
        _row("personas", "dpo", 1, 0.68, {"fans": 1.0, "critics": 0.1}),
        _row("personas", "moe-dpo", 0, 0.98, {"fans": 0.99, "critics": 0.96}, ari=1.0, routing=1.0),
        {
            "case": {"task": "personas", "method": "mix-dpo", "model": "random:llama-1m", "seed": 0},
            "error": "boom",
        },
    ]
    table = accuracy_table(rows)
    assert (
        "| random:llama-1m | personas | dpo | 1 | 2 | 67.0 ± 1.4 | critics 5.0 ± 7.1, fans 100.0 ± 0.0 |"
        in table
    )
    assert table.index("| dpo |") < table.index("| moe-dpo |")
    document = {"tier": "fast", "command": "mixdpo bench quality", "date": "2026-11-29", "wall_s": 60.0,
                "hardware": "cpu", "models": ["random:llama-1m"], "seeds": [0, 1], "rows": rows,
                "settings": tier("fast").settings.to_dict()}  # fmt: skip
    text = report_markdown(document, "quality.png")
    assert "### Failed cases" in text
    assert "boom" in text
    assert "![per-group accuracy](quality.png)" in text
    assert "(learning rate 0.002, 0.003 for random models; mixtures start with 10 hard E-step steps)" in text
    own = document["settings"] | {"model_learning_rates": {"random:llama-1m": 1e-3, "random:llama-20m": 5e-4}}
    text = report_markdown(document | {"settings": own})
    assert "0.003 for random models; 0.001 for `random:llama-1m`;" in text  # models without rows: not said
    assert plot_accuracy(rows, tmp_path / "q.png").stat().st_size > 0


def test_tiers_and_selection():
    fast = tier("fast")
    per_seed = len(TASKS) * len(ALL_METHODS) - 1  # no conditioned DPO on multi-reward
    assert len(fast.cases) == per_seed
    full = tier("full")
    assert {c.model for c in full.cases} == {"random:llama-1m", "random:llama-20m", "builtin:smollm2-135m"}
    assert len(full.cases) == 3 * 3 * per_seed
    rates = {m: full.settings.learning_rate_for(m) for m in full.models}  # the wide random model's own
    assert rates == {"random:llama-1m": 3e-3, "random:llama-20m": 3e-4, "builtin:smollm2-135m": 2e-3}
    chosen = select(full, tasks=["personas"], methods=["dpo", "moe-dpo"], seeds=[4], max_steps=5)
    assert [(c.task, c.method, c.seed) for c in chosen.cases[:2]] == [
        ("personas", "dpo", 4),
        ("personas", "moe-dpo", 4),
    ]
    assert chosen.settings.max_steps == 5
    with pytest.raises(ConfigError, match="unknown 'ppo'"):
        select(full, methods=["ppo"])
    with pytest.raises(ConfigError, match="choose fast or full"):
        tier("huge")


def test_full_tier_runs_a_whole_seed_before_the_next():
    cases = select(tier("full"), models=["builtin:smollm2-135m"]).cases
    first_seed = cases[: len(TASKS) * len(ALL_METHODS) - 1]
    assert {c.seed for c in first_seed} == {0}
    assert {(c.task, c.method) for c in first_seed} >= {(t, m) for t in TASKS for m in METHODS}


def test_ablation_suite_cases_and_options():
    ablations = tier("full", "ablations")
    assert [c.variant for c in ablations.cases] == list(ABLATIONS)
    assert {(c.task, c.method, c.model, c.seed) for c in ablations.cases} == {
        ("cross-domain", "moe-dpo", "builtin:smollm2-135m", 0)
    }
    assert ablations.settings.generation_prompts == 0
    assert ablations.cases[0].to_dict()["variant"] == "base"
    assert "variant" not in tier("fast").cases[0].to_dict()  # main-suite rows keep their old keys
    chosen = select(ablations, variants=["K=8", "heads backend"], models=["random:llama-1m"])
    assert [c.variant for c in chosen.cases] == ["K=8", "heads backend"]
    with pytest.raises(ConfigError, match="only the ablations suite"):
        select(tier("fast"), variants=["K=4"])
    with pytest.raises(ConfigError, match="unknown 'K=3'"):
        select(ablations, variants=["K=3"])

    settings = QualitySettings()

    def options(variant, model="builtin:smollm2-135m"):
        return training_options(QualityCase("cross-domain", "moe-dpo", model, 0, variant), settings, 2)

    assert options("base")["num_experts"] == 2
    assert options("base")["backend"] == "lora"
    assert options("base")["gate_learning_rate"] == settings.gate_learning_rates["prompt"]
    assert options("K=8")["num_experts"] == 8
    assert options("hard E-step")["estep"] == "hard"
    assert options("no symmetry breaking")["init_noise"] == 0.0
    assert options("no symmetry breaking")["estep_warmup_steps"] == 0
    assert options("embedding gate")["gate_features"] == "embeddings"
    assert "gate_features" not in options("base")  # the library's default: the final hidden state
    heads = options("heads backend")
    assert heads["backend"] == "heads"
    assert heads["heads_num_layers"] == 4
    assert heads["learning_rate"] == 1e-4
    assert "lora_r" not in heads
    assert "lora_top_layers" not in heads
    assert options("independent backend")["learning_rate"] == 1e-5
    tiny = options("heads backend", "random:llama-tiny")  # random models keep their defaults
    assert "heads_num_layers" not in tiny
    assert tiny["learning_rate"] == settings.random_learning_rate


def test_ablation_table_compares_with_the_base_case(tmp_path):
    def row(variant, seed, fans, critics, k=2, ari=0.5):
        base = _row("personas", "moe-dpo", seed, (fans + critics) / 2, {"fans": fans, "critics": critics},
                    ari=ari, routing=0.9, k=k)  # fmt: skip
        base["case"]["variant"] = variant
        return base

    plain = _row("personas", "moe-dpo", 0, 0.5, {"fans": 0.5, "critics": 0.5})
    rows = [row("base", 0, 0.9, 0.8), row("base", 1, 1.0, 0.9), row("K=1", 0, 1.0, 0.0, k=1),
            row("K=4", 0, 0.95, 0.7), plain]  # fmt: skip
    table = ablation_table(rows)
    assert "| random:llama-1m | base |" in table
    assert "| 85.0 ± 7.1 | — |" in table
    # K=1: accuracy 50 vs the base's 90 ± 7.1, worst group 0 vs 85 ± 7.1; no ARI/routing
    assert "| 0.0 ± 0.0 | loses (-40.0), loses (-85.0) | — | — |" in table
    # K=4: -7.5 points is beyond the base's spread over seeds (7.1) on accuracy; -15 on the worst group
    assert "| 70.0 ± 0.0 | loses (-7.5), loses (-15.0) | 0.50 ± 0.00 |" in table
    assert table.count("| random:llama-1m |") == 3  # the row without a variant is not an ablation
    assert table.index("| base |") < table.index("| K=1 |") < table.index("| K=4 |")
    assert plot_ablations(rows, tmp_path / "a.png").stat().st_size > 0
    # one seed each, with every pair's outcome: the verdict is paired (+5 points from 4 of 80 pairs gained
    # and none lost is a win; unpaired, on 80 pairs near 50%, it would be a tie)
    one = [row("base", 0, 0.5, 0.5), row("hard E-step", 0, 0.55, 0.55)]
    for r, outcomes in zip(one, ("1" * 40 + "0" * 40, "1" * 44 + "0" * 36), strict=True):
        r["eval"]["pair_correct"] = outcomes
        r["pairs"] = {"eval": {"read": 80, "left_out": 0}}
    assert "| wins (+5.0), wins (+5.0) |" not in ablation_table(one)  # the worst group stays unpaired
    assert "| wins (+5.0), ties (+5.0) |" in ablation_table(one)


def test_conditioned_prompts():
    from mixdpo.bench.quality_baselines import conditioned_prompt

    row = {"prompt": "User: Review the film.\nAssistant:", "user_id": "user_07", "domain": "movie"}
    assert conditioned_prompt("personas", row) == "[user: user_07] User: Review the film.\nAssistant:"
    assert conditioned_prompt("cross-domain", row).startswith("[domain: movie] User:")
    baselines = {c.method for c in tier("fast").cases} - set(METHODS)
    assert baselines == {"cond-dpo", "oracle-dpo", "trl-dpo", "wide-dpo"}


def test_baseline_verdicts_say_who_wins_by_how_much():
    from mixdpo.bench.quality_report import baseline_table
    from mixdpo.bench.verdict import compare

    assert compare([0.9, 1.0], [0.6, 0.7]) == ("wins", pytest.approx(30.0))
    assert compare([0.70], [0.71]) == ("ties", pytest.approx(-1.0))  # one seed: within 2 points
    assert compare([0.6, 0.8], [0.75, 0.75])[0] == "ties"  # -5 points, within the spread (14.1)
    assert compare([0.5], [0.9]) == ("loses", pytest.approx(-40.0))
    assert compare([None], [0.5]) == ("not measured", None)
    rows = [
        _row("personas", "moe-dpo", 0, 0.98, {"fans": 0.99, "critics": 0.96}, ari=1.0, routing=1.0),
        _row("personas", "dpo", 0, 0.66, {"fans": 1.0, "critics": 0.0}),
        _row("personas", "cond-dpo", 0, 1.0, {"fans": 1.0, "critics": 1.0}),
    ]
    table = baseline_table(rows)
    assert "moe-dpo vs dpo | 98.0 ± 0.0 / 66.0 ± 0.0 | 96.0 ± 0.0 / 0.0 ± 0.0 |" in table
    assert "moe-dpo wins on accuracy (+32.0 points), wins on the worst group (+96.0 points)" in table
    assert "moe-dpo ties on accuracy (-2.0 points), loses on the worst group (-4.0 points)" in table
    assert "vs oracle-dpo" not in table  # not measured: no row


def test_baseline_verdicts_allow_for_the_held_out_pairs():
    from mixdpo.bench.quality_report import baseline_table

    def counted(row, pairs, per_group=None):
        row["eval"] |= {"num_pairs": pairs, "per_group_pairs": per_group}
        return row

    # SmolLM2 personas, seed 0: +5 points on 120 pairs is within the held-out sets' noise (12.6 points)
    rows = [
        counted(
            _row("personas", "moe-dpo", 0, 0.55, {"fans": 0.525, "critics": 0.60}),
            120,
            {"fans": 80, "critics": 40},
        ),
        counted(
            _row("personas", "cond-dpo", 0, 0.50, {"fans": 0.50, "critics": 0.50}),
            120,
            {"fans": 80, "critics": 40},
        ),
    ]
    assert "moe-dpo ties on accuracy (+5.0 points), ties on the worst group (+2.5 points)" in baseline_table(
        rows
    )
    # the same accuracies on 100,000 pairs are a win; the worst group (fans) counts its own 80 pairs
    rows[0]["eval"]["num_pairs"] = rows[1]["eval"]["num_pairs"] = 100_000
    assert "moe-dpo wins on accuracy (+5.0 points), ties on the worst group" in baseline_table(rows)
    rows[0]["eval"]["per_group_pairs"] = rows[1]["eval"]["per_group_pairs"] = {"fans": 9e4, "critics": 1e4}
    assert "wins on the worst group (+2.5 points)" in baseline_table(rows)
    # rows written before the counts were stored: the evaluation file's pairs, shared equally by groups
    for row in rows:
        row["eval"] |= {"num_pairs": None, "per_group_pairs": None}
        row["pairs"] = {"train": {"read": 300, "left_out": 0}, "eval": {"read": 100_010, "left_out": 10}}
    assert "moe-dpo wins on accuracy (+5.0 points), wins on the worst group (+2.5 points)" in baseline_table(
        rows
    )
    for row in rows:
        row["pairs"]["eval"] = {"read": 120, "left_out": 0}
    assert "ties on accuracy (+5.0 points), ties on the worst group" in baseline_table(rows)


def test_baseline_verdicts_are_paired_when_every_row_kept_its_outcomes():
    from mixdpo.bench.quality_report import baseline_table, paired_outcomes

    mine = [_row("personas", "moe-dpo", s, 0.55, {"fans": 0.55, "critics": 0.55}) for s in (0, 1)]
    theirs = [_row("personas", "dpo", s, 0.50, {"fans": 0.50, "critics": 0.50}) for s in (0, 1)]
    for row in mine + theirs:
        row["eval"] |= {"num_pairs": 120, "per_group_pairs": {"fans": 60, "critics": 60}}
    # 6 pairs of 120 that MoE-DPO alone gets right, per seed; both right on 60
    for row in mine:
        row["eval"]["pair_correct"] = ("1" * 66).ljust(120, "0")
    for row in theirs:
        row["eval"]["pair_correct"] = ("0" * 6 + "1" * 60).ljust(120, "0")
    assert (
        paired_outcomes(mine, theirs)
        == [(mine[0]["eval"]["pair_correct"], theirs[0]["eval"]["pair_correct"])] * 2
    )
    assert "moe-dpo wins on accuracy (+5.0 points), ties on the worst group (+5.0 points)" in baseline_table(
        mine + theirs
    )  # the worst group stays unpaired: its group can differ from row to row
    # a seed without outcomes, or seeds that differ: unpaired, and +5 on 2 x 120 pairs is a tie
    theirs[1]["eval"]["pair_correct"] = None
    assert paired_outcomes(mine, theirs) is None
    assert "moe-dpo ties on accuracy (+5.0 points)" in baseline_table(mine + theirs)
    assert paired_outcomes(mine, theirs[:1]) is None


def test_saving_adopts_rows_another_invocation_wrote(tmp_path):
    import json

    from mixdpo.bench.quality_suite import _save

    settings = tier("fast").settings.to_dict()
    path = tmp_path / "quality.json"
    theirs = _row("personas", "dpo", 0, 0.6, {"fans": 0.9, "critics": 0.0})
    theirs["case"]["model"] = "random:llama-20m"
    path.write_text(json.dumps({"settings": settings, "rows": [theirs], "commands": ["mixdpo bench a"]}))
    ours = _row("personas", "moe-dpo", 0, 0.9, {"fans": 0.9, "critics": 0.9})
    document = {"settings": settings, "rows": [ours], "commands": ["mixdpo bench b"]}
    _save(document, path)
    saved = json.loads(path.read_text())
    assert [r["case"]["method"] for r in saved["rows"]] == ["moe-dpo", "dpo"]
    assert saved["commands"] == ["mixdpo bench a", "mixdpo bench b"]
    assert saved["models"] == ["random:llama-1m", "random:llama-20m"]
    assert saved["wall_s"] == 2.0
    other = {"settings": settings | {"max_steps": 99}, "rows": [ours], "commands": ["c"]}
    _save(other, path)  # other settings: nothing adopted
    assert len(json.loads(path.read_text())["rows"]) == 1
    assert json.loads(path.read_text())["commands"] == ["c"]


def test_an_interrupt_stops_the_suite_and_keeps_what_was_measured(tmp_path, monkeypatch):
    import json

    from mixdpo.bench import quality_suite
    from mixdpo.errors import TrainingInterrupted

    calls = []

    def fake_case(case, settings, work_dir):
        calls.append(case)
        if len(calls) == 2:
            raise TrainingInterrupted("ckpt", "SIGTERM")
        return _row(case.task, case.method, case.seed, 0.5, {"fans": 0.5, "critics": 0.5})

    monkeypatch.setattr(quality_suite, "run_quality_case", fake_case)
    chosen = select(tier("fast"), tasks=["personas"], methods=["dpo", "moe-dpo", "mix-dpo"])
    with pytest.raises(TrainingInterrupted):
        quality_suite.run_quality_suite("fast", chosen, tmp_path, log=lambda line: None)
    assert len(calls) == 2  # the third case never started
    saved = json.loads((tmp_path / "quality.json").read_text())
    assert [r["case"]["method"] for r in saved["rows"]] == ["dpo"]


def test_trl_baseline_adapts_the_same_top_layers_as_the_backend():
    # the full tier adapts the top 4 blocks; PEFT refuses layers_to_transform with target_modules="all-linear"
    # (the SmolLM2 TRL case failed on it), so the config names the layers as mixdpo's backend does
    from peft import get_peft_model

    from mixdpo.bench.quality_trl import lora_config
    from mixdpo.policy import PolicyConfig
    from mixdpo.policy.build import load_base

    model = load_base(PolicyConfig(model="random:llama-tiny")).model
    depth = model.config.num_hidden_layers
    peft_model = get_peft_model(model, lora_config({"lora_r": 4, "lora_top_layers": 1}, model))
    adapted = {
        n.split(".layers.")[1].split(".")[0] for n, _ in peft_model.named_parameters() if "lora_A" in n
    }
    assert adapted == {str(depth - 1)}


def test_pair_outcomes_put_each_prediction_at_its_file_row():
    from mixdpo.bench.quality import pair_outcomes

    predictions = [{"row": 3, "correct": True}, {"row": 1, "correct": False}, {"row": 4, "correct": True}]
    assert pair_outcomes(predictions, 5) == "0.11."  # rows 2 and 5 were not scored (left out)


def test_trl_outcomes_per_pair_average_to_trls_own_accuracy(tmp_path):
    """TRL reports means only: one evaluate() per pair gives each pair's outcome, and their mean is what TRL
    reports for the whole held-out set in one batch (no padding effect either way)."""
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import DPOConfig, DPOTrainer

    from mixdpo.bench.quality_trl import lora_config, pair_outcomes_of
    from mixdpo.models import load_model_and_tokenizer

    loaded = load_model_and_tokenizer("random:llama-tiny", seed=0)
    pairs = [{"prompt": f"Review {i}:", "chosen": " good" * (1 + i % 3), "rejected": " bad" * (1 + i % 2)}
             for i in range(10)]  # fmt: skip
    args = DPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=3, learning_rate=3e-2,
                     report_to="none", save_strategy="no", disable_tqdm=True, use_cpu=True,
                     per_device_eval_batch_size=20)  # fmt: skip
    trainer = DPOTrainer(model=loaded.model, args=args, train_dataset=Dataset.from_list(pairs),
                         processing_class=loaded.tokenizer,
                         peft_config=lora_config({"lora_r": 4}, loaded.model))  # fmt: skip
    trainer.train()
    # each pair followed by itself with chosen and rejected swapped: the two outcomes must differ
    held_out = [q for p in pairs for q in (p, p | {"chosen": p["rejected"], "rejected": p["chosen"]})]
    whole = trainer.evaluate(eval_dataset=Dataset.from_list(held_out))["eval_rewards/accuracies"]
    outcomes = pair_outcomes_of(trainer, held_out)
    assert len(outcomes) == 20
    assert set(outcomes) <= {"0", "1"}
    assert outcomes.count("1") / 20 == pytest.approx(whole)
    assert all(outcomes[i] != outcomes[i + 1] for i in range(0, 20, 2)), outcomes
    # the per-pair evaluations print nothing, and the trainer's printer is back afterwards
    assert any(isinstance(c, PrinterCallback) for c in trainer.callback_handler.callbacks)
