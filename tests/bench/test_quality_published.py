"""With ``--update-benchmarks`` the quality suite continues from the rows published in
``docs/benchmarks/`` (tracked by git, unlike its output directory): a fresh clone measures only what is
missing, and the published JSON is refreshed after every case, so a stopped run's rows can be committed."""

from __future__ import annotations

import json

import pytest

from mixdpo.bench import quality_suite
from mixdpo.bench.quality_cases import select, tier
from mixdpo.bench.sections import published_path
from mixdpo.errors import TrainingInterrupted


def _row(case, accuracy: float) -> dict:
    return {
        "case": case.to_dict(),
        "num_experts": 1 if case.method == "dpo" else 2,
        "gate": "user",
        "eval": {"mixture_accuracy": accuracy, "per_group_accuracy": {"fans": accuracy, "critics": accuracy}},
        "generation": None,
        "wall_s": 1.0,
        "learning_rate": quality_suite._case_options(case.to_dict(), tier("fast").settings)[0],
    }


@pytest.fixture
def cases():
    return select(tier("fast"), tasks=["personas"], methods=["dpo", "moe-dpo", "mix-dpo"]).cases


def _publish(tmp_path, rows, settings=None, commands=("mixdpo bench quality --tier fast --a",)):
    path = published_path(tmp_path / "BENCHMARKS.md", "quality-fast", ".json")
    path.parent.mkdir(parents=True)
    settings = settings or tier("fast").settings.to_dict()
    path.write_text(json.dumps({"settings": settings, "rows": rows, "commands": list(commands)}))
    return path


def test_a_fresh_output_directory_continues_from_the_published_rows(tmp_path, cases, monkeypatch):
    published = _publish(tmp_path, [_row(cases[0], 0.61)])
    measured = []

    def fake_case(case, settings, work_dir):
        measured.append(case.method)
        if case.method == "moe-dpo":  # stopped during the last case
            raise TrainingInterrupted("ckpt", "SIGTERM")
        # the rows so far are already published when the next case starts
        assert len(json.loads(published.read_text())["rows"]) == len(measured)
        return _row(case, 0.7)

    monkeypatch.setattr(quality_suite, "run_quality_case", fake_case)
    chosen = select(tier("fast"), tasks=["personas"], methods=["dpo", "moe-dpo", "mix-dpo"])
    out = tmp_path / "bench"
    with pytest.raises(TrainingInterrupted):
        quality_suite.run_quality_suite(
            "fast", chosen, out, benchmarks_md=tmp_path / "BENCHMARKS.md", command="b", log=lambda line: None
        )
    assert measured == ["mix-dpo", "moe-dpo"]  # dpo was published: not trained again
    saved = json.loads(published.read_text())
    assert [(r["case"]["method"], r["eval"]["mixture_accuracy"]) for r in saved["rows"]] == [
        ("dpo", 0.61),
        ("mix-dpo", 0.7),
    ]
    assert saved["commands"] == ["mixdpo bench quality --tier fast --a", "b"]

    # the next run (output directory and published JSON agree) measures only the missing case and
    # writes the section
    measured.clear()
    monkeypatch.setattr(quality_suite, "run_quality_case", lambda case, s, w: _row(case, 0.8))
    document = quality_suite.run_quality_suite(
        "fast", chosen, out, benchmarks_md=tmp_path / "BENCHMARKS.md", command="c", log=lambda line: None
    )
    assert [r["case"]["method"] for r in document["rows"]] == ["dpo", "mix-dpo", "moe-dpo"]
    assert json.loads(published.read_text())["rows"] == document["rows"]
    assert "`c`" in (tmp_path / "BENCHMARKS.md").read_text()


def test_published_rows_of_other_settings_or_without_update_are_not_used(tmp_path, cases, monkeypatch):
    other = tier("fast").settings.to_dict() | {"max_steps": 99}
    _publish(tmp_path, [_row(cases[0], 0.61)], settings=other)
    measured = []
    monkeypatch.setattr(quality_suite, "run_quality_case", lambda c, s, w: measured.append(c) or _row(c, 0.7))
    chosen = select(tier("fast"), tasks=["personas"], methods=["dpo"])
    quality_suite.run_quality_suite(
        "fast", chosen, tmp_path / "a", benchmarks_md=tmp_path / "BENCHMARKS.md", log=lambda line: None
    )
    assert len(measured) == 1  # other settings: the published dpo row is not reused

    # without --update-benchmarks the published file is neither read nor written
    _publish(tmp_path / "fresh", [_row(cases[0], 0.61)])
    quality_suite.run_quality_suite("fast", chosen, tmp_path / "b", log=lambda line: None)
    assert len(measured) == 2


@pytest.mark.parametrize("stem", ["quality-full", "regimes-full"])
def test_the_published_full_tier_documents_match_the_tier_settings(stem):
    """A settings change that the published rows were not measured with makes the next
    ``--update-benchmarks`` run start afresh (and overwrite them): it must be deliberate, never a side
    effect of adding an unset field (the regimes' quality settings once gained an empty
    ``model_learning_rates``)."""
    from pathlib import Path

    from mixdpo.bench.quality_suite import _shared
    from mixdpo.bench.regimes import regime_tier

    path = published_path(Path(__file__).resolve().parents[2] / "BENCHMARKS.md", stem, ".json")
    stored = json.loads(path.read_text())["settings"]
    if stem == "quality-full":
        assert _shared(stored) == _shared(tier("full").settings.to_dict())
        assert len(quality_suite._previous_rows(path, tier("full").settings)) == len(
            json.loads(path.read_text())["rows"]
        )
    else:
        now = json.loads(json.dumps(regime_tier("full").to_dict()))
        assert {**stored, "seeds": None} == {**now, "seeds": None}
