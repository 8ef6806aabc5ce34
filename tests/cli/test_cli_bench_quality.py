"""``mixdpo bench quality --tier fast`` end to end: every case trains, is evaluated on held-out pairs and
generates, and the report, plot and BENCHMARKS section are written; a rerun keeps what was measured."""

from __future__ import annotations

import json

from tests_cli_helpers import run_mixdpo as run_cli


def _assert_rewards_average_to_the_means(row: dict) -> None:
    """Every source's per-prompt rewards, averaged within each slice, are its stored mean rewards."""
    for source, means in row["generation"].items():
        for key, mean in means.items():
            axis, _, label = key.partition("[")
            rewards = row["generation_rewards"][source][axis]
            assert len(rewards) == 4  # the fast tier's generation prompts
            if label:  # the slices alternate (round-robin over sorted slice names): 2 prompts each
                names = sorted(k.partition("[")[2] for k in means if k.startswith(axis))
                rewards = rewards[names.index(label) :: len(names)]
            assert abs(sum(rewards) / len(rewards) - mean) < 1e-9, (row["case"], source, key)


def test_bench_quality_fast_tier_runs_and_writes_its_report(tmp_path):
    bench_md = tmp_path / "BENCHMARKS.md"
    bench_md.write_text("# Benchmarks\n\nother sections stay\n")
    out = tmp_path / "out"
    result = run_cli("bench", "quality", "--tier", "fast", "--output-dir", str(out),
                     "--update-benchmarks", str(bench_md), timeout=1200)  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads((out / "quality.json").read_text())
    rows = document["rows"]
    # 3 tasks x (DPO, Mix-DPO, MoE-DPO, oracle per-group DPO, TRL DPO, rank-K*r DPO) + conditioned DPO on 2
    assert len(rows) == 20
    for row in rows:
        assert row.get("error") is None
        assert row["pairs"]["train"]["left_out"] == 0  # max_length fits every pair of the tasks
        assert row["pairs"]["train"]["read"] > 0
        assert 0.0 <= row["eval"]["mixture_accuracy"] <= 1.0
        k, method = row["num_experts"], row["case"]["method"]
        groups = 2 if row["case"]["task"] != "multi-reward" else 3
        assert k == (groups if method in ("mix-dpo", "moe-dpo", "oracle-dpo") else 1)
        sources = set(row["generation"])
        assert sources == {"reference", "mixture", *(f"expert:{i}" for i in range(k))}
        assert set(row["generation_rewards"]) == sources
        _assert_rewards_average_to_the_means(row)
        if method == "oracle-dpo":  # each group's policy is evaluated on its own group's pairs
            assert set(row["eval"]["per_group_accuracy"]) == set(row["eval"]["group_to_expert"])
        # every held-out pair's outcome, in the evaluation file's order (TRL's: one evaluate() per pair)
        outcomes = row["eval"]["pair_correct"]
        assert len(outcomes) == row["pairs"]["eval"]["read"]
        assert set(outcomes) <= {"0", "1"}  # nothing left out
        assert abs(outcomes.count("1") / len(outcomes) - row["eval"]["mixture_accuracy"]) < 1e-9, method
    wide = next(r for r in rows if r["case"]["task"] == "personas" and r["case"]["method"] == "wide-dpo")
    assert wide["lora_r"] == 2 * 8  # as many adapter parameters as K = 2 experts of rank 8
    methods = {(r["case"]["task"], r["case"]["method"]) for r in rows}
    assert ("multi-reward", "cond-dpo") not in methods  # no observable condition on multi-reward
    assert {("personas", "cond-dpo"), ("cross-domain", "trl-dpo")} <= methods
    personas = next(r for r in rows if r["case"]["task"] == "personas" and r["case"]["method"] == "moe-dpo")
    assert personas["gate"] == "user"
    assert set(personas["generation"]["mixture"]) == {"sentiment[critics]", "sentiment[fans]"}
    cross = next(r for r in rows if r["case"]["task"] == "cross-domain" and r["case"]["method"] == "dpo")
    assert set(cross["generation"]["reference"]) == {"length[book]", "length[movie]"}
    report = (out / "quality.md").read_text()
    for line in (
        "### Targets",
        "### Held-out preference accuracy",
        "| random:llama-tiny | personas | moe-dpo | 2 | 1 |",
        "reward gain over the reference model",
        "Pairs left out of training and evaluation",
        "### Two regimes these rows answer",
        "**Capacity-limited adapters.**",
        "**Steerability (Mix-DPO, no user information).**",
    ):
        assert line in report
    assert (out / "quality.png").stat().st_size > 0
    assert not (out / "runs").exists()  # run directories are removed unless --keep-runs
    text = bench_md.read_text()
    assert "other sections stay" in text
    assert "mixdpo bench quality --tier fast" in text
    assert (tmp_path / "docs" / "benchmarks" / "quality-fast.png").is_file()
    assert (tmp_path / "docs" / "benchmarks" / "quality-fast.json").is_file()
    assert "every row: `docs/benchmarks/quality-fast.json`" in text

    again = run_cli("bench", "quality", "--tier", "fast", "--output-dir", str(out), "--tasks", "personas")
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("measured before, kept") == 7
    # the other tasks' rows, measured by the first run, stay in the report
    assert len(json.loads((out / "quality.json").read_text())["rows"]) == 20
    assert "Commands, run one after another" in (out / "quality.md").read_text()


def test_bench_quality_ablations_run_and_write_their_section(tmp_path):
    bench_md = tmp_path / "BENCHMARKS.md"
    bench_md.write_text("# Benchmarks\n")
    out = tmp_path / "ablations"
    variants = "base,K=1,hard E-step,heads backend,no symmetry breaking"
    result = run_cli("bench", "quality", "--tier", "fast", "--suite", "ablations", "--variants", variants,
                     "--output-dir", str(out), "--update-benchmarks", str(bench_md))  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = {r["case"]["variant"]: r for r in json.loads((out / "quality.json").read_text())["rows"]}
    assert list(rows) == variants.split(",")
    assert all(r.get("error") is None and r["generation"] is None for r in rows.values())
    assert rows["K=1"]["num_experts"] == 1
    assert rows["base"]["num_experts"] == 2
    assert rows["heads backend"]["backend"] == "heads"
    assert rows["base"]["backend"] == "lora"
    text = bench_md.read_text()
    assert "<!-- mixdpo bench quality ablations: begin -->" in text
    assert "| random:llama-tiny | hard E-step |" in text
    assert (tmp_path / "docs" / "benchmarks" / "quality-fast-ablations.png").is_file()
