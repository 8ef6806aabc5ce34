"""``mixdpo bench regimes``: regimes where a latent mixture should have an edge over a single policy, each
with a stated hypothesis and the measured answer.

``few-shot-users`` (on ``reviews-users``: hidden fans and critics, conflicting labels on the same items).
MoE-DPO (K = 2, user gate), conditioned DPO (the user id written into the prompt, P-DPO style) and plain
DPO train on the training users with the same budget. Then users training never saw arrive, each with
``n`` labelled pairs (n in ``pairs_per_user``) and ``test_pairs_per_user`` held-out pairs:

- MoE-DPO refits only the gate (``personalize_run(train="gate")``): K numbers per new user;
- conditioned DPO must fine-tune its policy on the new users' pairs, their ids in the prompts
  (``personalize_run(train="experts")``): every adapter parameter, shared by all users;
- plain DPO cannot use the labels at all (context).

``n = 0`` is the *unknown users at inference* case: MoE-DPO's learned fallback (the population prior),
conditioned DPO given ids it has never seen.

``many-users`` (``reviews-users`` with hundreds of users and 4 training pairs each, one epoch): MoE-DPO
pools every user's pairs into two shared experts and learns K numbers per user, conditioned DPO must learn
each id's preference from that id's 4 pairs; scored on held-out pairs of the same users.
"""

from __future__ import annotations

import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mixdpo.bench.quality import pair_outcomes, read_rows, train_and_evaluate, training_options
from mixdpo.bench.quality_baselines import conditioned_prompt, write_splits
from mixdpo.bench.quality_cases import QualityCase, QualitySettings
from mixdpo.errors import ConfigError
from mixdpo.tasks.registry import write_jsonl

Log = Callable[[str], None]
TASK = "reviews-users"
HYPOTHESES = {
    "few-shot-users": (
        "Users never seen in training, with 2-16 labelled pairs each: refitting MoE-DPO's gate (K numbers "
        "per user, experts frozen) reaches higher held-out accuracy than fine-tuning conditioned DPO on the "
        "same pairs, with far fewer parameters per user; with no pairs at all (unknown users), the "
        "mixture's fallback is no worse than conditioned DPO given an unseen id."
    ),
    "many-users": (
        "Hundreds of users with 4 training pairs each: MoE-DPO, which pools all users' pairs into shared "
        "experts and only learns which expert each user follows, reaches higher held-out accuracy on those "
        "users than conditioned DPO, which has to tie each user id to a preference from 4 pairs."
    ),
}
METHODS = ("moe-dpo", "cond-dpo", "dpo")


@dataclass(frozen=True)
class RegimeSettings:
    """A tier of the regimes benchmark.

    Attributes:
        model: base model spec; seeds: each rebuilds the task and retrains.
        quality: the training budget, shared with ``mixdpo bench quality``.
        task_sizes: sizes of ``reviews-users`` (new users and their pairs included).
        pairs_per_user: labelled pairs per new user to personalise from (0 = none: unknown users).
        test_pairs_per_user: held-out pairs per new user, the same for every n.
        personalize_epochs: passes over the new users' pairs for gate refitting / expert fine-tuning, the
            same for both (so every n gets the same number of looks at each pair).
        many_users_sizes, many_users_steps: ``reviews-users`` sizes and training steps of ``many-users``
            (one epoch of its training pairs).
        many_users_groups: (fans, critics) per ``many-users`` configuration: the same pairs spread over
            more and more users, so fewer pairs per user.
        personalize_learning_rates: the personalisation's learning rate per method (``moe-dpo``: the gate
            refit, ``cond-dpo``: the fine-tuning); a method left out uses its run's own (the gate's or the
            experts' training rate). The full tier fine-tunes conditioned DPO at its best rate of
            ``scripts/probe_cond_finetune.py`` rather than ours.
    """

    model: str
    seeds: tuple[int, ...]
    quality: QualitySettings
    task_sizes: dict[str, int] = field(default_factory=dict)
    pairs_per_user: tuple[int, ...] = (0, 2, 4, 8, 16)
    test_pairs_per_user: int = 8
    personalize_epochs: float = 5.0
    many_users_sizes: dict[str, int] = field(default_factory=dict)
    many_users_steps: int = 0
    many_users_groups: tuple[tuple[int, int], ...] = ()
    personalize_learning_rates: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        # the quality settings as the quality suite writes them (fields added later are left out while
        # unset), so that documents written before such a field existed still compare equal
        out = asdict(self) | {"quality": self.quality.to_dict()}
        if not self.personalize_learning_rates:
            del out["personalize_learning_rates"]
        return out


def regime_tier(name: str) -> RegimeSettings:
    """``fast``: a 0.1M-parameter random Llama, a few steps (the CI test; its numbers mean little).
    ``full``: SmolLM2-135M, three seeds, 12 new users (8 fans, 4 critics) with 24 pairs each."""
    sizes = {"new_fans": 8, "new_critics": 4, "new_user_pairs": 288}
    if name == "fast":
        quality = QualitySettings(max_steps=8, batch=4, generation_prompts=0)
        fast_sizes = {"train_pairs": 60, "eval_pairs": 30, "fans": 4, "critics": 2, "new_fans": 2,
                      "new_critics": 1, "new_user_pairs": 36}  # fmt: skip
        many = {"train_pairs": 120, "eval_pairs": 30, "new_user_pairs": 0}
        return RegimeSettings("random:llama-tiny", (0,), quality, fast_sizes, (0, 2, 4), 4, 2.0, many, 30,
                              ((4, 2), (20, 10)))  # fmt: skip
    if name == "full":
        # 960 training pairs over 24, 96 or 240 users (40, 10 or 4 pairs each); 120 steps = 1 epoch
        many = {"train_pairs": 960, "eval_pairs": 240, "new_user_pairs": 0}
        quality = QualitySettings(generation_prompts=0)
        groups = ((16, 8), (64, 32), (160, 80))
        # conditioned DPO fine-tuned at 2e-3 (its training rate) got worse the more pairs it saw; 1e-4 was
        # its best of 2e-3 / 5e-4 / 1e-4 in scripts/probe_cond_finetune.py (picked on held-out pairs of
        # seed 0: in the baseline's favour)
        return RegimeSettings("builtin:smollm2-135m", (0, 1, 2), quality, sizes, many_users_sizes=many,
                              many_users_steps=120, many_users_groups=groups,
                              personalize_learning_rates={"cond-dpo": 1e-4})  # fmt: skip
    raise ConfigError("tier", f"got {name!r}; choose fast or full")


def split_new_users(rows: list[dict], n: int, test: int) -> tuple[list[dict], list[dict]]:
    """(the first ``n`` pairs of every new user, the last ``test`` pairs of every new user)."""
    by_user: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_user[row["user_id"]].append(row)
    for user, own in by_user.items():
        if len(own) < n + test:
            raise ConfigError(
                "pairs_per_user", f"user {user} has {len(own)} pairs; {n} + {test} test pairs are needed"
            )
    fit = [row for own in by_user.values() for row in own[:n]]
    held_out = [row for own in by_user.values() for row in own[len(own) - test :]]
    return fit, held_out


def _with_user_id(row: dict) -> dict:
    return row | {"prompt": conditioned_prompt(TASK, row)}


def conditioned_rows(rows: list[dict]) -> list[dict]:
    """Rows whose prompts carry the user id (conditioned DPO's input)."""
    return [_with_user_id(row) for row in rows]


def conditioned_splits(files: dict[str, Path], out_dir: Path) -> dict[str, Path]:
    """The task's train and eval splits rewritten under ``out_dir`` with the user id in every prompt."""
    train_eval = {split: files[split] for split in ("train", "eval")}
    return write_splits(train_eval, out_dir, _with_user_id)


def _accuracy(evaluation: dict) -> dict[str, Any]:
    out = {"accuracy": evaluation.get("mixture_accuracy"), "per_group": evaluation.get("per_group_accuracy")}
    if evaluation.get("num_pairs"):  # what the accuracy rests on: the report's verdicts allow for it
        out["test_pairs"] = evaluation["num_pairs"]
    if evaluation.get("pair_correct"):  # every held-out pair's outcome: the report's verdicts are paired
        out["pair_correct"] = evaluation["pair_correct"]
    return out


def _outcomes(predicted: Path, num_rows: int) -> str:
    """:func:`~mixdpo.bench.quality.pair_outcomes` of a predictions file scored on a test file of
    ``num_rows`` rows: the methods' test files hold the same pairs in the same order (conditioned DPO's only
    rewrite the prompt), so their strings align pair by pair."""
    from mixdpo.evaluation import read_predictions

    return pair_outcomes(read_predictions(predicted), num_rows)


def _evaluate(run_dir: Path, path: Path, num_rows: int, predictions: Path) -> dict:
    """The trained run's policy scored on ``path`` (``num_rows`` rows), with every pair's outcome
    (``pair_correct``)."""
    from mixdpo.data import build_preference_dataset
    from mixdpo.evaluation import evaluate_policy
    from mixdpo.trainer.config_io import load_config
    from mixdpo.workflows.train import load_run_policy

    policy = load_run_policy(run_dir)
    config = load_config(run_dir / "config.yaml", [])
    dataset, _ = build_preference_dataset(path, policy.tokenizer, config.tokenization_settings())
    evaluation = evaluate_policy(policy, dataset, batch_size=config.per_device_eval_batch_size,
                                 predictions=predictions)  # fmt: skip
    return evaluation | {"pair_correct": _outcomes(predictions, num_rows)}


def run_few_shot_users(settings: RegimeSettings, seed: int, work_dir: Path, log: Log) -> list[dict[str, Any]]:
    """One seed of ``few-shot-users``: train the three methods, then for every n personalise and evaluate
    on the new users' held-out pairs; returns one row per (method, n)."""
    from mixdpo.tasks import write_task
    from mixdpo.workflows.personalize import personalize_run
    from mixdpo.workflows.train import PREDICTIONS_FILE

    files = write_task(TASK, work_dir / "data", seed=seed, format="text", **settings.task_sizes)
    new_rows = read_rows(files["new_users"])

    runs: dict[str, Path] = {}
    for method in METHODS:
        case = QualityCase(TASK, method, settings.model, seed)
        options = training_options(case, settings.quality, groups=2)
        method_files = conditioned_splits(files, work_dir / "conditioned") if method == "cond-dpo" else files
        log(f"  training {method}")
        train_and_evaluate(options, method_files, work_dir / method, log=lambda line: None)
        runs[method] = work_dir / method
    rows: list[dict[str, Any]] = []
    for n in settings.pairs_per_user:
        fit, test = split_new_users(new_rows, n, settings.test_pairs_per_user)
        paths = {}
        for label, data in (("fit", fit), ("test", test)):
            for method in ("plain", "cond"):
                path = work_dir / f"n{n}" / f"{label}-{method}.jsonl"
                path.parent.mkdir(parents=True, exist_ok=True)
                write_jsonl(conditioned_rows(data) if method == "cond" else data, path)
                paths[(label, method)] = path
        for method in METHODS:
            plain = "cond" if method == "cond-dpo" else "plain"
            row: dict[str, Any] = {"seed": seed, "method": method, "pairs_per_user": n, "fit_pairs": len(fit),
                                   "test_pairs": len(test), "parameters_per_user": 0, "shared_parameters": 0,
                                   "personalize_s": 0.0}  # fmt: skip
            if n == 0 or method == "dpo":  # nothing to learn from, or no way to use it
                predicted = work_dir / f"n{n}" / f"{method}-predictions.jsonl"
                row |= _accuracy(_evaluate(runs[method], paths[("test", plain)], len(test), predicted))
            else:
                train = "gate" if method == "moe-dpo" else "experts"
                start = time.perf_counter()
                summary = personalize_run(
                    runs[method], paths[("fit", plain)], out_dir=work_dir / f"n{n}" / method,
                    eval_data=paths[("test", plain)], epochs=settings.personalize_epochs, train=train,
                    learning_rate=settings.personalize_learning_rates.get(method), log=lambda line: None,
                )  # fmt: skip
                predicted = work_dir / f"n{n}" / method / PREDICTIONS_FILE
                outcomes = _outcomes(predicted, len(test))
                row |= _accuracy(summary["eval"] | {"pair_correct": outcomes})
                users = len({r["user_id"] for r in fit})
                row["parameters_per_user"] = summary["parameters_per_new_user"] or 0
                row["shared_parameters"] = summary["expert_parameters_trained"]
                row["gate_parameters"] = summary["gate_parameters_trained"]
                row["personalize_s"] = time.perf_counter() - start  # load + refit / fine-tune + evaluate
                row["fit_s"] = summary["wall_time_s"]  # the refit / fine-tuning alone
                row["learning_rate"] = summary["learning_rate"]
                row["new_users"] = users
            log(f"  n={n} {method}: accuracy {row['accuracy']:.3f}")
            rows.append(row)
    return rows


def run_many_users(
    settings: RegimeSettings,
    seed: int,
    work_dir: Path,
    log: Log,
    *,
    kept: Sequence[dict[str, Any]] = (),
    on_row: Callable[[dict[str, Any]], None] = lambda row: None,
) -> list[dict[str, Any]]:
    """One seed of ``many-users``: each method trains one epoch on many users' few pairs and is scored on
    held-out pairs of the same users; returns one row per (users, method).

    The full tier trains nine models, so the regime resumes per case: ``kept`` are rows a stopped run
    measured (those cases are not trained again), and ``on_row`` is called with each row as it is measured
    (:func:`run_regimes` saves it at once)."""
    from dataclasses import replace

    from mixdpo.tasks import write_task

    quality = replace(settings.quality, max_steps=settings.many_users_steps)
    before = {(row["users"], row["method"]): row for row in kept}
    rows = []
    for fans, critics in settings.many_users_groups:
        here = work_dir / f"u{fans + critics}"
        sizes = settings.many_users_sizes | {"fans": fans, "critics": critics}
        files = write_task(TASK, here / "data", seed=seed, format="text", **sizes)
        train_rows = read_rows(files["train"])
        users = len({r["user_id"] for r in train_rows})
        for method in METHODS:
            if (users, method) in before:
                rows.append(before[(users, method)])
                log(f"  many-users, {users} users, {method}: measured before, kept")
                continue
            options = training_options(QualityCase(TASK, method, settings.model, seed), quality, groups=2)
            method_files = conditioned_splits(files, here / "conditioned") if method == "cond-dpo" else files
            log(f"  training {method} on {users} users")
            start = time.perf_counter()
            evaluation, _, _ = train_and_evaluate(options, method_files, here / method, log=lambda line: None)
            rows.append({"seed": seed, "method": method, "users": users, "train_pairs": len(train_rows),
                         "pairs_per_user": len(train_rows) / users, "steps": quality.max_steps,
                         "train_s": time.perf_counter() - start, **_accuracy(evaluation)})  # fmt: skip
            on_row(rows[-1])
            shutil.rmtree(here / method, ignore_errors=True)  # its row is kept; the model is not needed
            log(f"  many-users, {users} users, {method}: accuracy {rows[-1]['accuracy']:.3f}")
    return rows
