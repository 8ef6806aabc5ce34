"""Speed report arithmetic: ratios against the right baselines, target verdicts, the BENCHMARKS section."""

from __future__ import annotations

import pytest

from mixdpo.bench.speed_cases import SpeedCase, select, tier
from mixdpo.bench.speed_report import check_targets, markdown_table, update_section, with_ratios
from mixdpo.errors import ConfigError


def row(case: SpeedCase, step: float, mem: float, error: str | None = None) -> dict:
    return {
        "case": case.to_dict(),
        "step_s": step,
        "peak_mb": mem,
        "passes": {"trunk": 0.0, "expert": float(case.experts), "reference": 0.0},
        "executed_flops": 2e9,
        "analytic_flops": 1e9,
        "error": error,
    }


ROWS = [
    row(SpeedCase("trl", "lora", 1, True), 2.0, 1000),
    row(SpeedCase("trl", "full", 1, True), 4.0, 2000),
    row(SpeedCase("mixdpo", "lora", 1, True), 1.8, 990),
    row(SpeedCase("mixdpo", "lora", 4, True), 7.0, 1500),
    row(SpeedCase("mixdpo", "lora", 8, True), 17.0, 2500),
    row(SpeedCase("mixdpo", "heads", 1, True), 1.0, 900),
    row(SpeedCase("mixdpo", "heads", 4, True), 1.2, 950),
    row(SpeedCase("mixdpo", "independent", 1, True), 4.4, 1900),
    row(SpeedCase("mixdpo", "independent", 8, True), 0, 0, error="exit -9: killed (out of memory?)"),
]


def test_ratios_use_the_trl_counterpart_and_k1_of_the_same_method():
    by_name = {SpeedCase(**r["case"]).name: r for r in with_ratios(ROWS)}
    lora4 = by_name["mixdpo lora K=4 (cached ref)"]
    assert lora4["time_vs_trl"] == pytest.approx(7.0 / 2.0)
    assert lora4["time_vs_k1"] == pytest.approx(7.0 / 1.8)
    assert lora4["memory_vs_k1"] == pytest.approx(1500 / 990)
    heads4 = by_name["mixdpo heads K=4 (cached ref)"]
    assert heads4["time_vs_trl"] == pytest.approx(1.2 / 2.0)  # heads compares with TRL LoRA
    independent = by_name["mixdpo independent K=1 (cached ref)"]
    assert independent["time_vs_trl"] == pytest.approx(4.4 / 4.0)  # full fine-tuning with full
    assert by_name["mixdpo independent K=8 (cached ref)"]["time_vs_k1"] is None  # the failed case


def test_target_verdicts():
    checks = {c.target: c for c in check_targets(ROWS, roofline_flops=1e9)}
    assert checks["heads K=4 step time ≤ 1.3× heads K=1"].floor == "1.00×"  # equal analytic FLOPs here
    assert checks["mixdpo lora K=1 step time ≤ 1.0× TRL (cached, live ref)"].met is True
    assert checks["mixdpo independent K=1 step time ≤ 1.0× TRL (cached, live ref)"].met is False
    assert checks["heads K=4 step time ≤ 1.3× heads K=1"].met is True
    assert checks["lora K=4 peak memory ≤ 1.15× lora K=1 (activations stored)"].met is False
    assert checks["lora K=8 step time ≤ 8.4× K=1 (cached ref)"].met is False  # 17 / 1.8 = 9.4
    assert checks["independent K=8 step time ≤ 8.4× K=1 (cached ref)"].met is None  # failed: not measured
    assert checks["expert fwd/bwd ≥ 50% of matmul peak (batch 8 × 256)"].met is None


def test_table_lists_every_case_and_failures():
    table = markdown_table(ROWS, roofline_flops=1e9)
    assert table.count("\n| ") == len(ROWS) - 1 + 1  # header separator excluded, one line per row
    assert "failed: exit -9: killed (out of memory?)" in table
    assert "| mixdpo lora K=4 (cached ref) | 7.000 | 3.50 | 3.89 | 1500 |" in table


def test_update_section_replaces_only_its_own_part(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\n## Quality\n\nkeep me\n")
    update_section(path, "## Speed\n\nfirst")
    update_section(path, "## Speed\n\nsecond")
    text = path.read_text()
    assert "keep me" in text
    assert "second" in text
    assert "first" not in text
    assert text.count("mixdpo bench speed: begin") == 1


def test_tiers_and_selection():
    fast = tier("fast")
    assert {c.library for c in fast.cases} == {"trl", "mixdpo"}
    chosen = select(fast.cases, experts={1}, methods={"lora"}, reference="cached")
    assert {c.name for c in chosen} == {
        "TRL DPOTrainer full (cached ref)",
        "TRL DPOTrainer lora (cached ref)",
        "mixdpo lora K=1 (cached ref)",
        "TRL DPOTrainer lora (cached ref) + act. ckpt",
        "mixdpo lora K=1 (cached ref) + act. ckpt",
    }
    full = tier("full", steps=5)
    assert full.settings.steps == 5
    assert full.settings.model == "builtin:smollm2-135m"
    assert all(c.batch is None for c in select(full.cases, large=False))
    with pytest.raises(ConfigError, match="tier"):
        tier("medium")
    with pytest.raises(ConfigError, match="not a speed-benchmark setting"):
        tier("fast", colour="red")
