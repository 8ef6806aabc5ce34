"""``mixdpo bench regimes --tier fast`` end to end, and the new-user split it relies on."""

from __future__ import annotations

import json

import pytest

from mixdpo.bench.regimes import split_new_users
from mixdpo.errors import ConfigError
from tests_cli_helpers import run_mixdpo as run_cli


def test_split_new_users_takes_the_first_n_to_fit_and_the_last_pairs_to_test():
    rows = [{"user_id": u, "i": i} for u in ("a", "b") for i in range(6)]
    fit, test = split_new_users(rows, 2, 3)
    assert [(r["user_id"], r["i"]) for r in fit] == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert [(r["user_id"], r["i"]) for r in test] == [
        ("a", 3),
        ("a", 4),
        ("a", 5),
        ("b", 3),
        ("b", 4),
        ("b", 5),
    ]
    assert split_new_users(rows, 0, 3)[0] == []
    with pytest.raises(ConfigError, match="user a has 6 pairs; 4 \\+ 3 test pairs are needed"):
        split_new_users(rows, 4, 3)


def test_bench_regimes_fast_tier(tmp_path):
    bench_md = tmp_path / "BENCHMARKS.md"
    bench_md.write_text("# Benchmarks\n\nkept\n")
    out = tmp_path / "regimes"
    first = run_cli("bench", "regimes", "--tier", "fast", "--regimes", "few-shot-users",
                    "--output-dir", str(out), "--update-benchmarks", str(bench_md))  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "many_users" not in json.loads((out / "regimes.json").read_text())["seeds"]["0"]
    assert "### Many users, few pairs each" in bench_md.read_text()
    assert "Not run yet with these settings." in bench_md.read_text()

    # the rest of the tier into the same directory: few-shot-users is kept, many-users runs
    result = run_cli("bench", "regimes", "--tier", "fast", "--output-dir", str(out),
                     "--update-benchmarks", str(bench_md))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "few-shot-users, seed 0: measured before, kept" in result.stdout + result.stderr
    document = json.loads((out / "regimes.json").read_text())
    rows = document["seeds"]["0"]["rows"]
    assert {(r["pairs_per_user"], r["method"]) for r in rows} == {
        (n, m) for n in (0, 2, 4) for m in ("moe-dpo", "cond-dpo", "dpo")
    }
    for row in rows:
        assert 0.0 <= row["accuracy"] <= 1.0
        assert row["test_pairs"] == 3 * 4  # 3 new users x 4 held-out pairs, the same for every n
        # every held-out pair's outcome, personalised or not: they average to the accuracy
        assert len(row["pair_correct"]) == 12
        assert set(row["pair_correct"]) <= {"0", "1"}
        assert row["pair_correct"].count("1") / 12 == pytest.approx(row["accuracy"])
        if row["pairs_per_user"] and row["method"] == "moe-dpo":  # K gate numbers per new user only
            assert (row["parameters_per_user"], row["shared_parameters"], row["new_users"]) == (2, 0, 3)
            assert 0.0 < row["fit_s"] < row["personalize_s"]  # fitting is part of the whole call
        elif row["pairs_per_user"] and row["method"] == "cond-dpo":  # the shared adapters move
            assert row["parameters_per_user"] == 0
            assert row["shared_parameters"] > 0
            assert row["gate_parameters"] == 0
        else:  # nothing personalised
            assert row["personalize_s"] == 0.0
    many = document["seeds"]["0"]["many_users"]
    assert [(r["users"], r["method"]) for r in many] == [
        (users, method) for users in (6, 30) for method in ("moe-dpo", "cond-dpo", "dpo")
    ]
    for row in many:  # the same 120 training pairs over 6 or 30 users, one epoch each
        assert (row["train_pairs"], row["steps"]) == (120, 30)
        assert row["pairs_per_user"] == 120 / row["users"]
        assert 0.0 <= row["accuracy"] <= 1.0
        assert len(row["pair_correct"]) == 30  # the eval file's rows, in order
        assert row["pair_correct"].count("1") / row["test_pairs"] == pytest.approx(row["accuracy"])
    text = bench_md.read_text()
    assert "### Many users, few pairs each" in text
    assert "| 30 | 4.0 | cond-dpo |" in text
    assert "kept" in text
    assert "### Few-shot new users" in text
    assert "**Hypothesis.**" in text
    # the rate each method personalised at (the fast tier sets none: the runs' own)
    assert "| 2 | cond-dpo | fine-tune the policy (user id in the prompt), lr 0.003 |" in text
    assert "| 2 | moe-dpo | refit the gate (experts frozen), lr 0.3 |" in text
    assert "(batch 8; each method at its run's own learning rate)" in text
    assert (tmp_path / "docs" / "benchmarks" / "regimes-fast.png").is_file()
    assert json.loads((tmp_path / "docs" / "benchmarks" / "regimes-fast.json").read_text()) == document
    assert "every row: `docs/benchmarks/regimes-fast.json`" in text
    assert not (out / "runs").exists()

    again = run_cli("bench", "regimes", "--tier", "fast", "--output-dir", str(out))
    assert again.returncode == 0, again.stderr
    assert "many-users, seed 0: measured before, kept" in again.stdout + again.stderr
    assert "Not run yet" not in bench_md.read_text()


def test_bench_regimes_names_an_unknown_regime(tmp_path):
    result = run_cli("bench", "regimes", "--regimes", "few-shot", "--output-dir", str(tmp_path))
    assert result.returncode == 2
    assert "unknown ['few-shot']; choose from few-shot-users, many-users" in result.stderr
    assert "Traceback" not in result.stderr
