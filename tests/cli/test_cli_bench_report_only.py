"""``mixdpo bench quality|regimes --report-only``: the report is rewritten from what was measured (after the
report itself changed), nothing is trained, and the commands that made the rows are left as they were."""

from __future__ import annotations

import json

from mixdpo.bench.quality_cases import select, tier
from mixdpo.bench.quality_suite import _case_options
from mixdpo.bench.regimes import HYPOTHESES, regime_tier
from tests_cli_helpers import run_mixdpo as run_cli

MADE_BY = "mixdpo bench quality --tier fast --tasks personas"


def _quality_row(case, accuracy: float, pairs: int) -> dict:
    return {
        "case": case.to_dict(),
        "num_experts": 1 if case.method == "dpo" else 2,
        "gate": "user",
        "eval": {"mixture_accuracy": accuracy, "per_group_accuracy": {"fans": accuracy, "critics": accuracy},
                 "num_pairs": pairs, "per_group_pairs": {"fans": pairs // 2, "critics": pairs // 2}},
        "generation": None,
        "pairs": {"train": {"read": 60, "left_out": 0}, "eval": {"read": pairs, "left_out": 0}},
        "wall_s": 1.0,
        "learning_rate": _case_options(case.to_dict(), tier("fast").settings)[0],
    }  # fmt: skip


def test_quality_report_only_rewrites_the_section_from_the_published_rows(tmp_path):
    bench_md = tmp_path / "BENCHMARKS.md"
    bench_md.write_text("# Benchmarks\n\nother sections stay\n")
    published = tmp_path / "docs" / "benchmarks" / "quality-fast.json"
    published.parent.mkdir(parents=True)
    dpo, moe = select(tier("fast"), tasks=["personas"], methods=["dpo", "moe-dpo"]).cases
    rows = [_quality_row(dpo, 0.50, 120), _quality_row(moe, 0.55, 120)]
    document = {"settings": tier("fast").settings.to_dict(), "rows": rows, "commands": [MADE_BY]}
    published.write_text(json.dumps(document))
    out = tmp_path / "out"

    result = run_cli("bench", "quality", "--tier", "fast", "--report-only", "--output-dir", str(out),
                     "--update-benchmarks", str(bench_md))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2 case(s) measured before; the report is rewritten from them, nothing is trained" in result.stderr
    text = bench_md.read_text()
    assert "other sections stay" in text
    assert f"Command: `{MADE_BY}`" in text  # the report-only command made no row: not listed
    # +5 points on 120 held-out pairs is within the sampling noise: a tie, and the rule is stated
    assert "moe-dpo ties on accuracy (+5.0 points)" in text
    assert "1.96 standard errors" in text
    assert not (out / "runs").exists()  # nothing was trained
    plotted = tmp_path / "docs" / "benchmarks" / "quality-fast.png"
    assert plotted.stat().st_size > 0
    assert "| random:llama-tiny | personas | moe-dpo | 2 | 1 | 55.0 ± 0.0 |" in text
    after = json.loads(published.read_text())
    assert after["rows"] == rows  # as they were, in their order
    assert after["commands"] == [MADE_BY]

    # nothing measured with these settings: a clear error, not an empty report
    empty = run_cli(
        "bench", "quality", "--tier", "fast", "--report-only", "--output-dir", str(tmp_path / "x")
    )
    assert empty.returncode == 2
    assert "no case measured with these settings" in empty.stderr
    assert "without --report-only" in empty.stderr
    assert "Traceback" not in empty.stderr


def _few(method: str, n: int, accuracy: float) -> dict:
    return {"seed": 0, "method": method, "pairs_per_user": n, "fit_pairs": 3 * n, "test_pairs": 96,
            "parameters_per_user": 2 if method == "moe-dpo" and n else 0, "shared_parameters": 0,
            "personalize_s": 0.0, "accuracy": accuracy,
            "per_group": {"fans": accuracy, "critics": accuracy}}  # fmt: skip


def test_regimes_report_only_rewrites_the_section_from_the_published_document(tmp_path):
    bench_md = tmp_path / "BENCHMARKS.md"
    bench_md.write_text("# Benchmarks\n")
    published = tmp_path / "docs" / "benchmarks" / "regimes-fast.json"
    published.parent.mkdir(parents=True)
    settings = json.loads(json.dumps(regime_tier("fast").to_dict()))
    rows = [
        _few("moe-dpo", 0, 0.667),
        _few("cond-dpo", 0, 0.604),
        _few("moe-dpo", 2, 1.0),
        _few("cond-dpo", 2, 0.51),
    ]
    made_by = "mixdpo bench regimes --tier fast --regimes few-shot-users"
    document = {"settings": settings, "seeds": {"0": {"wall_s": 60.0, "rows": rows}}, "command": made_by,
                "commands": [made_by], "hardware": "a test machine", "hypotheses": HYPOTHESES}  # fmt: skip
    published.write_text(json.dumps(document))
    out = tmp_path / "out"

    result = run_cli("bench", "regimes", "--tier", "fast", "--report-only", "--output-dir", str(out),
                     "--update-benchmarks", str(bench_md))  # fmt: skip
    assert result.returncode == 0, result.stderr
    text = bench_md.read_text()
    assert f"Command: `{made_by}`" in text
    assert "Hardware and versions: a test machine." in text  # the machine that measured, not this one
    assert "MoE-DPO ties (+6.3 points)" in text  # unknown users: within the noise of 96 pairs
    assert "MoE-DPO wins (+49.0 points)" in text
    assert "### Many users, few pairs each" in text
    assert "Not run yet with these settings." in text
    assert json.loads(published.read_text()) == document  # the document as it was
    assert not (out / "runs").exists()

    empty = run_cli(
        "bench", "regimes", "--tier", "fast", "--report-only", "--output-dir", str(tmp_path / "x")
    )
    assert empty.returncode == 2
    assert "nothing measured with these settings" in empty.stderr
    assert "Traceback" not in empty.stderr
