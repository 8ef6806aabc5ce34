"""The regimes report on hand-made rows: means over seeds, MoE-DPO's verdict per row, the plot."""

from __future__ import annotations

from mixdpo.bench.regimes_report import few_shot_table, many_users_table, plot_regimes


def _few(method, n, seed, acc, per_user=0, shared=0, fit=None):
    row = {"seed": seed, "method": method, "pairs_per_user": n, "accuracy": acc,
           "per_group": {"fans": acc + 0.05, "critics": acc - 0.05}, "parameters_per_user": per_user,
           "shared_parameters": shared, "personalize_s": 2.0}  # fmt: skip
    return row if fit is None else row | {"fit_s": fit}


def _many(method, users, seed, acc):
    return {"seed": seed, "method": method, "users": users, "pairs_per_user": 120 / users, "accuracy": acc,
            "per_group": {"fans": acc}, "train_s": 10.0}  # fmt: skip


DOCUMENT = {
    "seeds": {
        "0": {"rows": [_few("moe-dpo", 0, 0, 0.5), _few("cond-dpo", 0, 0, 0.5),
                       _few("moe-dpo", 4, 0, 0.9, 2, fit=0.5), _few("cond-dpo", 4, 0, 0.6, 0, 18688),
                       _few("dpo", 4, 0, 0.66)],
              "many_users": [_many("moe-dpo", 30, 0, 0.9), _many("cond-dpo", 30, 0, 0.55)]},
        "1": {"rows": [_few("moe-dpo", 4, 1, 0.8, 2, fit=1.5), _few("cond-dpo", 4, 1, 0.7, 0, 18688)],
              "many_users": [_many("moe-dpo", 30, 1, 0.8), _many("cond-dpo", 30, 1, 0.65)]},
    }
}  # fmt: skip


def test_few_shot_table_means_verdicts_and_parameters():
    table = few_shot_table(DOCUMENT)
    # n = 0: nothing was personalised (unknown users)
    assert "| 0 | moe-dpo | none (unknown users) | 50.0 ± 0.0 |" in table
    assert (
        "| 0 | cond-dpo | none (unknown users) | 50.0 ± 0.0 | 45.0 ± 0.0 | 0 | 0 | — | 2.0 "
        "| MoE-DPO ties (+0.0 points) |" in table
    )
    # n = 4, two seeds: MoE 85 ± 7.1, conditioned 65 ± 7.1 -> +20 points, beyond the spread
    # fitting time: the mean of the seeds that recorded it; the whole call's time beside it
    assert (
        "| 4 | moe-dpo | refit the gate (experts frozen) | 85.0 ± 7.1 | 80.0 ± 7.1 | 2 | 0 | 1.0 | 2.0 |"
        in table
    )
    assert (
        "| 4 | cond-dpo | fine-tune the policy (user id in the prompt) | 65.0 ± 7.1 | 60.0 ± 7.1 | 0 "
        "| 18,688 |" in table
    )
    assert "MoE-DPO wins (+20.0 points)" in table
    assert "| 4 | dpo | nothing (cannot use the labels) | 66.0 ± 0.0 |" in table


def test_many_users_table_and_plot(tmp_path):
    table = many_users_table(DOCUMENT)
    assert "| 30 | 4.0 | moe-dpo | 85.0 ± 7.1 |" in table
    assert "| 30 | 4.0 | cond-dpo | 60.0 ± 7.1 | 60.0 ± 7.1 | 10 | MoE-DPO wins (+25.0 points) |" in table
    assert plot_regimes(DOCUMENT, tmp_path / "r.png").stat().st_size > 0


def test_verdicts_allow_for_the_held_out_pairs():
    # seed 0's unknown users: 66.7% vs 60.4% on 96 pairs each is 6.3 points, inside 1.96 standard errors
    # (13.6 points); the same difference on 10,000 pairs is not
    def doc(pairs):
        rows = [
            _few("moe-dpo", 0, 0, 0.667) | {"test_pairs": pairs},
            _few("cond-dpo", 0, 0, 0.604) | {"test_pairs": pairs},
        ]
        return {"seeds": {"0": {"rows": rows}}}

    assert "MoE-DPO ties (+6.3 points)" in few_shot_table(doc(96))
    assert "MoE-DPO wins (+6.3 points)" in few_shot_table(doc(10_000))
    # many-users rows written before they stored their pair count: the settings' eval_pairs stands in
    rows = [_many("moe-dpo", 30, 0, 0.60), _many("cond-dpo", 30, 0, 0.52)]
    document = {"seeds": {"0": {"many_users": rows}}}
    assert "MoE-DPO wins (+8.0 points)" in many_users_table(document)  # no count known: 2-point floor only
    document["settings"] = {"many_users_sizes": {"eval_pairs": 240}}
    assert "MoE-DPO ties (+8.0 points)" in many_users_table(document)  # 1.96 SE on 240 pairs: 8.8 points


def test_the_personalisation_rate_is_shown_where_every_seed_used_the_same():
    def rated(row, rate):
        return row | {"learning_rate": rate}

    document = {"seeds": {
        "0": {"rows": [rated(_few("moe-dpo", 4, 0, 0.9, 2, fit=0.5), 0.3),
                       rated(_few("cond-dpo", 4, 0, 0.6, 0, 18688), 1e-4)]},
        "1": {"rows": [rated(_few("moe-dpo", 4, 1, 0.8, 2, fit=1.5), 0.3),
                       rated(_few("cond-dpo", 4, 1, 0.7, 0, 18688), 2e-3)]},
    }}  # fmt: skip
    table = few_shot_table(document)
    assert "| 4 | moe-dpo | refit the gate (experts frozen), lr 0.3 |" in table
    # two rates over the seeds: no single rate to show
    assert "| 4 | cond-dpo | fine-tune the policy (user id in the prompt) |" in table
    assert "lr" not in few_shot_table(DOCUMENT)  # rows written before they kept their rate


def test_the_report_names_the_rates_set_per_method():
    from mixdpo.bench.regimes import HYPOTHESES, regime_tier
    from mixdpo.bench.regimes_report import regimes_markdown

    def report(settings):
        seeds = {seed: measured | {"wall_s": 1.0} for seed, measured in DOCUMENT["seeds"].items()}
        document = {"settings": settings.to_dict(), "seeds": seeds, "hardware": "h",
                    "command": "c", "hypotheses": HYPOTHESES}  # fmt: skip
        return regimes_markdown(document, None, "full")

    full = regime_tier("full")
    assert full.personalize_learning_rates == {"cond-dpo": 1e-4}
    assert "(batch 8; cond-dpo at 0.0001, the others at their run's own learning rate" in report(full)
    assert "(batch 8; each method at its run's own learning rate)" in report(regime_tier("fast"))


def test_verdicts_are_paired_where_rows_keep_every_pairs_outcome():
    # +5 points on 120 pairs: unpaired a tie; paired, with the 6 pairs MoE-DPO gains the only
    # disagreements, a win (the rule of mixdpo.bench.verdict.compare)
    moe, cond = "1" * 6 + "1" * 60 + "0" * 54, "0" * 6 + "1" * 60 + "0" * 54

    def doc(with_outcomes):
        rows = [
            _few("moe-dpo", 4, 0, 0.55) | {"test_pairs": 120},
            _few("cond-dpo", 4, 0, 0.50) | {"test_pairs": 120},
        ]
        if with_outcomes:
            rows[0]["pair_correct"], rows[1]["pair_correct"] = moe, cond
        many = [_many(m, 30, 0, a) | {"test_pairs": 120} for m, a in (("moe-dpo", 0.55), ("cond-dpo", 0.50))]
        if with_outcomes:
            many[0]["pair_correct"], many[1]["pair_correct"] = moe, cond
        return {"seeds": {"0": {"rows": rows, "many_users": many}}}

    assert "MoE-DPO ties (+5.0 points)" in few_shot_table(doc(False))
    assert "MoE-DPO wins (+5.0 points)" in few_shot_table(doc(True))
    assert "MoE-DPO ties (+5.0 points)" in many_users_table(doc(False))
    assert "MoE-DPO wins (+5.0 points)" in many_users_table(doc(True))
    # one side without outcomes (a row measured before they were kept): unpaired
    unpaired = doc(True)
    del unpaired["seeds"]["0"]["rows"][1]["pair_correct"]
    assert "MoE-DPO ties (+5.0 points)" in few_shot_table(unpaired)
