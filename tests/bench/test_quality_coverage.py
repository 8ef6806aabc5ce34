"""The report's account of which cases of a tier are measured, on hand-made rows."""

from __future__ import annotations

from mixdpo.bench.quality_cases import QualityCase, tier
from mixdpo.bench.quality_coverage import coverage_markdown


def _row(task, method, model, seed, variant="", error=None):
    case = QualityCase(task, method, model, seed, variant).to_dict()
    return {"case": case, "error": error}


def test_cells_are_the_measured_seeds_per_method_and_the_line_counts_the_plan():
    plan = [QualityCase(t, m, "M", s) for t in ("personas", "multi-reward") for m in ("dpo", "cond-dpo")
            for s in (0, 1, 2) if (t, m) != ("multi-reward", "cond-dpo")]  # fmt: skip
    rows = [
        _row("personas", "dpo", "M", 2), _row("personas", "dpo", "M", 0),
        _row("personas", "cond-dpo", "M", 1, error="boom"),  # failed: not measured
        _row("multi-reward", "dpo", "M", 1),
        _row("multi-reward", "dpo", "M", 7), _row("personas", "dpo", "other", 0),  # outside the plan
    ]  # fmt: skip
    text = coverage_markdown(rows, plan, "full")
    assert text.startswith(
        "3 of 9 cases of the full tier are measured (and 2 beyond its plan: other models or seeds). "
        "Each cell: the seeds measured, of 0, 1, 2.\n"
    )
    assert "| model | task | dpo | cond-dpo |" in text
    assert "| M | personas | 0, 2 | — |" in text  # sorted seeds; the failed case is not in
    assert "| M | multi-reward | 1 | n/a |" in text  # no conditioned DPO on multi-reward
    assert "other" not in text.split("\n", 1)[1]


def test_the_full_tiers_plans_and_ablation_rows():
    full = tier("full").cases
    assert coverage_markdown([], full, "full").startswith("0 of 180 cases of the full tier are measured.")
    ablations = tier("full", "ablations").cases  # the largest model, the first seed
    rows = [
        _row("cross-domain", "moe-dpo", "builtin:smollm2-135m", 0, variant) for variant in ("base", "K=8")
    ]
    text = coverage_markdown(rows, ablations, "full")
    assert text.startswith(f"2 of {len(ablations)} cases of the full tier are measured. Each cell: the seeds")
    assert "| builtin:smollm2-135m | cross-domain | 0 | — | — | 0 | — |" in text  # base, K=1, K=4, K=8


def test_the_last_line_says_how_to_measure_the_rest_or_the_whole_tier_again():
    plan = [QualityCase("personas", "dpo", "M", s) for s in (0, 1)]
    command = "mixdpo bench quality --tier full"
    partial = coverage_markdown([_row("personas", "dpo", "M", 0)], plan, "full", command)
    assert partial.endswith(
        "\n\n`mixdpo bench quality --tier full --update-benchmarks` measures the rest (cases measured with "
        "these settings are kept).\n"
    )
    failed = [_row("personas", "dpo", "M", 0), _row("personas", "dpo", "M", 1, error="boom")]
    assert "measures the rest" in coverage_markdown(failed, plan, "full", command)  # a failed case is missing
    rows = [_row("personas", "dpo", "M", s) for s in (1, 0)]
    complete = coverage_markdown(rows, plan, "full", command)
    assert complete.startswith("2 of 2 cases of the full tier are measured.")
    assert complete.endswith(
        "\n\nEvery case of the plan is measured. `mixdpo bench quality --tier full --output-dir <new "
        "folder>` measures the tier again from scratch (with `--update-benchmarks` it would keep the "
        "published rows and rerun none).\n"
    )
    assert "measures the rest" not in complete
    assert coverage_markdown(rows, plan, "full").endswith("| M | personas | 0, 1 |\n")  # no command, no line
