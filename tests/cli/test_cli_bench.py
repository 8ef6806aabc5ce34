"""``mixdpo bench speed`` end to end: a real run of the smallest tier shape writes its JSON, table and
BENCHMARKS section (no timing assertions: only that every case ran and was reported)."""

from __future__ import annotations

import json

from tests_cli_helpers import run_mixdpo as run_cli


def test_bench_speed_fast_tier_shape_runs_and_writes_its_report(tmp_path):
    bench_md = tmp_path / "BENCHMARKS.md"
    bench_md.write_text("# Benchmarks\n\nother sections stay\n")
    result = run_cli(
        "bench", "speed", "--tier", "fast", "--model", "random:llama-tiny", "--batch", "2", "--length", "16",
        "--steps", "1", "--warmup", "0", "--experts", "1,2", "--backends", "lora", "--reference", "cached",
        "--output-dir", str(tmp_path / "out"), "--update-benchmarks", str(bench_md),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "out" / "speed.json").read_text())
    names = [row["case"] for row in document["rows"]]
    # TRL full + TRL lora + mixdpo lora K=1, K=2, and with activation checkpointing TRL lora + mixdpo K=1
    assert len(names) == 6
    assert all(row["error"] is None and row["step_s"] > 0 and row["peak_mb"] > 0 for row in document["rows"])
    assert document["roofline"]["flops_per_s"] > 0
    assert document["settings"]["model"] == "random:llama-tiny"
    table = (tmp_path / "out" / "speed.md").read_text()
    for line in (
        "TRL DPOTrainer full (cached ref)",
        "mixdpo lora K=2 (cached ref)",
        "### Targets",
        "Command:",
    ):
        assert line in table
    text = bench_md.read_text()
    assert "other sections stay" in text
    assert "mixdpo lora K=2 (cached ref)" in text
    assert "mixdpo bench speed --tier fast" in text  # the command that made it


def test_bench_speed_bad_options_are_clear_errors(tmp_path):
    result = run_cli("bench", "speed", "--backends", "lora,moe", "--output-dir", str(tmp_path))
    assert result.returncode == 2
    assert "unknown backend 'moe'" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli("bench", "speed", "--experts", "0,2")
    assert result.returncode == 2
    assert "--experts" in result.stderr


def test_bench_without_a_benchmark_prints_help():
    result = run_cli("bench")
    assert result.returncode == 0
    assert "speed" in result.stdout
