"""``run_regimes`` resumes per (seed, regime): regimes and seeds run one at a time land in one document,
a change of the model or the training budget starts it afresh, and a change of one regime's own settings
re-measures that regime only. The regimes themselves are replaced by
recorders here; ``tests/cli/test_cli_bench_regimes.py`` runs them for real."""

from __future__ import annotations

import json

import pytest

from mixdpo.bench import regimes, regimes_suite
from mixdpo.bench.regimes import regime_tier
from mixdpo.bench.regimes_report import regimes_markdown
from mixdpo.bench.regimes_suite import run_regimes, stale_regimes
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

    monkeypatch.setattr(regimes_suite, "run_few_shot_users", recorder("few"))
    monkeypatch.setattr(regimes_suite, "run_many_users", recorder("many"))
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


def test_stale_regimes_compares_each_regimes_own_settings():
    from dataclasses import replace

    def as_stored(settings):
        return json.loads(json.dumps(settings.to_dict()))

    tier = regime_tier("fast")
    stored = as_stored(tier)
    assert stale_regimes(None, stored) is None
    assert stale_regimes(stored, as_stored(replace(tier, seeds=(0, 1, 2)))) == set()
    assert stale_regimes(stored, as_stored(replace(tier, personalize_learning_rates={"cond-dpo": 1e-4}))) == {
        "few-shot-users"
    }
    assert stale_regimes(stored, as_stored(replace(tier, many_users_steps=7))) == {"many-users"}
    both = replace(tier, personalize_epochs=1.0, many_users_groups=((2, 1),))
    assert stale_regimes(stored, as_stored(both)) == {"few-shot-users", "many-users"}
    # what both regimes read: nothing can be kept
    assert stale_regimes(stored, as_stored(replace(tier, model="random:llama-1m"))) is None
    quality = replace(tier, quality=replace(tier.quality, max_steps=9))
    assert stale_regimes(stored, as_stored(quality)) is None


def test_a_change_of_one_regimes_settings_remeasures_that_regime_only(tmp_path, calls):
    from dataclasses import replace

    tier = replace(regime_tier("fast"), seeds=(0, 1))
    before = run_regimes(tier, tmp_path, log=print)
    assert calls == [("few", 0), ("many", 0), ("few", 1), ("many", 1)]
    many_rows = before["seeds"]["0"]["many_users"]
    walls = before["seeds"]["0"]["regime_wall_s"]
    assert before["seeds"]["0"]["wall_s"] == pytest.approx(sum(walls.values()))

    lines: list[str] = []
    rates = replace(tier, personalize_learning_rates={"cond-dpo": 1e-4})
    after = run_regimes(rates, tmp_path, log=lines.append)
    assert calls[4:] == [("few", 0), ("few", 1)]  # many-users kept for both seeds
    assert "few-shot-users: measured with other settings, measured again" in lines
    assert after["seeds"]["0"]["many_users"] == many_rows
    assert after["settings"]["personalize_learning_rates"] == {"cond-dpo": 1e-4}
    # the wall time keeps the kept regime's share and adds the new measurement's
    now = after["seeds"]["0"]["regime_wall_s"]
    assert now["many-users"] == walls["many-users"]
    assert after["seeds"]["0"]["wall_s"] == pytest.approx(now["many-users"] + now["few-shot-users"])
    # the same settings again: nothing to do
    run_regimes(rates, tmp_path, log=print)
    assert len(calls) == 6


def test_a_seed_measured_before_regime_times_were_kept_keeps_its_rows_time(tmp_path, calls):
    """Documents written before per-regime times: dropping a regime leaves the kept rows' own times."""
    from dataclasses import replace

    tier = replace(regime_tier("fast"), seeds=(0,))
    document = run_regimes(tier, tmp_path, log=print)
    seed = document["seeds"]["0"]
    del seed["regime_wall_s"]
    seed["wall_s"] = 1000.0
    (tmp_path / "regimes.json").write_text(json.dumps(document))
    after = run_regimes(replace(tier, personalize_epochs=1.0), tmp_path, log=print)
    # the many-users row's own clock (train_s = 1.0), plus the new few-shot measurement
    assert after["seeds"]["0"]["wall_s"] == pytest.approx(
        1.0 + after["seeds"]["0"]["regime_wall_s"]["few-shot-users"]
    )
