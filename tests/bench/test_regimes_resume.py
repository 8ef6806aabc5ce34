"""``run_regimes`` resumes per (seed, regime): regimes and seeds run one at a time land in one document,
and a change of settings (other than the seeds) starts it afresh. The regimes themselves are replaced by
recorders here; ``tests/cli/test_cli_bench_regimes.py`` runs them for real."""

from __future__ import annotations

import json

import pytest

from mixdpo.bench import regimes
from mixdpo.bench.regimes import regime_tier, run_regimes
from mixdpo.bench.regimes_report import regimes_markdown
from mixdpo.errors import ConfigError


@pytest.fixture
def calls(monkeypatch):
    made: list[tuple[str, int]] = []
    rows = {
        "few": {"method": "dpo", "pairs_per_user": 0, "accuracy": 0.5, "per_group": {"fans": 0.5},
                "parameters_per_user": 0, "shared_parameters": 0, "personalize_s": 0.0},
        "many": {"method": "dpo", "users": 6, "pairs_per_user": 4.0, "accuracy": 0.5,
                 "per_group": {"fans": 0.5}, "train_s": 1.0},
    }  # fmt: skip

    def recorder(name):
        def run(settings, seed, work_dir, log, **progress):
            made.append((name, seed))
            return [{"seed": seed, **rows[name]}]

        return run

    monkeypatch.setattr(regimes, "run_few_shot_users", recorder("few"))
    monkeypatch.setattr(regimes, "run_many_users", recorder("many"))
    return made


def test_seeds_and_regimes_run_one_at_a_time_share_one_document(tmp_path, calls):
    from dataclasses import replace

    tier = regime_tier("fast")
    run_regimes(replace(tier, seeds=(0,)), tmp_path, regimes=("few-shot-users",), command="a", log=print)
    run_regimes(replace(tier, seeds=(1,)), tmp_path, regimes=("few-shot-users",), command="b", log=print)
    document = run_regimes(replace(tier, seeds=(0, 1)), tmp_path, command="c", log=print)
    assert calls == [("few", 0), ("few", 1), ("many", 0), ("many", 1)]
    assert json.loads((tmp_path / "regimes.json").read_text()) == document
    assert sorted(document["seeds"]) == ["0", "1"]
    assert all({"rows", "many_users", "wall_s"} <= set(measured) for measured in document["seeds"].values())
    assert document["commands"] == ["a", "b", "c"]
    assert document["settings"]["seeds"] == [0, 1]
    assert "Commands, run one after another into the same directory: `a`, `b`, `c`" in regimes_markdown(
        document, None, "fast"
    )

    # another model is another benchmark: nothing is kept, not even partly measured cases
    stale = tmp_path / "runs" / "s0" / "many-users" / "u6" / "data.jsonl"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}\n")
    document = run_regimes(replace(tier, model="random:llama-1m", seeds=(0,)), tmp_path, log=print)
    assert calls[-2:] == [("few", 0), ("many", 0)]
    assert list(document["seeds"]) == ["0"]
    assert not stale.exists()


def test_unknown_regime_is_a_config_error(tmp_path, calls):
    with pytest.raises(ConfigError, match="unknown \\['steer'\\]"):
        run_regimes(regime_tier("fast"), tmp_path, regimes=("steer",), log=print)
    assert calls == []


def test_many_users_resumes_at_the_first_case_not_measured(tmp_path, monkeypatch):
    """Each (users, method) case of ``many-users`` is saved (and published) as it is measured: a stopped run
    redoes none of them, in this directory or, from the published JSON, in a fresh one."""
    from dataclasses import replace

    trained: list[str] = []
    stop_after: list[int] = [4]

    def fake_train(options, files, work_dir, log):
        if len(trained) == stop_after[0]:
            raise KeyboardInterrupt  # stopped during the fifth case
        trained.append(work_dir.name + "@" + work_dir.parent.name)
        return {"mixture_accuracy": 0.5 + 0.01 * len(trained), "per_group_accuracy": {"fans": 0.5}}, {}, None

    monkeypatch.setattr(regimes, "train_and_evaluate", fake_train)
    tier = replace(regime_tier("fast"), seeds=(0,))  # two user configurations x three methods
    published = tmp_path / "docs" / "regimes-fast.json"
    with pytest.raises(KeyboardInterrupt):
        run_regimes(tier, tmp_path / "a", regimes=("many-users",), log=print, published=published)
    for path in (tmp_path / "a" / "regimes.json", published):
        saved = json.loads(path.read_text())["seeds"]["0"]
        assert "many_users" not in saved  # the regime is not done
        assert len(saved["many_users_measured"]) == 4

    stop_after[0] = 99
    # a fresh output directory (another clone) continues from the published document
    document = run_regimes(tier, tmp_path / "b", regimes=("many-users",), log=print, published=published)
    assert len(trained) == 6  # only the last two cases trained
    measured = document["seeds"]["0"]
    assert "many_users_measured" not in measured
    assert [r["accuracy"] for r in measured["many_users"]] == [0.51, 0.52, 0.53, 0.54, 0.55, 0.56]
    assert json.loads(published.read_text()) == document

    # without the published document, another fresh directory measures everything
    run_regimes(tier, tmp_path / "c", regimes=("many-users",), log=print)
    assert trained[6:] == [*trained[:4], *trained[4:6]]  # all six; the resumed run trained the last two
