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

import json
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mixdpo.bench.quality import read_rows, train_and_evaluate, training_options
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

    def to_dict(self) -> dict[str, Any]:
        # the quality settings as the quality suite writes them (fields added later are left out while
        # unset), so that documents written before such a field existed still compare equal
        return asdict(self) | {"quality": self.quality.to_dict()}


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
        return RegimeSettings("builtin:smollm2-135m", (0, 1, 2), quality, sizes, many_users_sizes=many,
                              many_users_steps=120, many_users_groups=groups)  # fmt: skip
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
    return out


def _evaluate(run_dir: Path, path: Path) -> dict:
    from mixdpo.data import build_preference_dataset
    from mixdpo.evaluation import evaluate_policy
    from mixdpo.trainer.config_io import load_config
    from mixdpo.workflows.train import load_run_policy

    policy = load_run_policy(run_dir)
    config = load_config(run_dir / "config.yaml", [])
    dataset, _ = build_preference_dataset(path, policy.tokenizer, config.tokenization_settings())
    return evaluate_policy(policy, dataset, batch_size=config.per_device_eval_batch_size)


def run_few_shot_users(settings: RegimeSettings, seed: int, work_dir: Path, log: Log) -> list[dict[str, Any]]:
    """One seed of ``few-shot-users``: train the three methods, then for every n personalise and evaluate
    on the new users' held-out pairs; returns one row per (method, n)."""
    from mixdpo.tasks import write_task
    from mixdpo.workflows.personalize import personalize_run

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
                row |= _accuracy(_evaluate(runs[method], paths[("test", plain)]))
            else:
                train = "gate" if method == "moe-dpo" else "experts"
                start = time.perf_counter()
                summary = personalize_run(
                    runs[method], paths[("fit", plain)], out_dir=work_dir / f"n{n}" / method,
                    eval_data=paths[("test", plain)], epochs=settings.personalize_epochs, train=train,
                    log=lambda line: None,
                )  # fmt: skip
                row |= _accuracy(summary["eval"])
                users = len({r["user_id"] for r in fit})
                row["parameters_per_user"] = summary["parameters_per_new_user"] or 0
                row["shared_parameters"] = summary["expert_parameters_trained"]
                row["gate_parameters"] = summary["gate_parameters_trained"]
                row["personalize_s"] = time.perf_counter() - start  # load + refit / fine-tune + evaluate
                row["fit_s"] = summary["wall_time_s"]  # the refit / fine-tuning alone
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


REGIMES = ("few-shot-users", "many-users")
_KEYS = {"few-shot-users": "rows", "many-users": "many_users"}
_PARTIAL = "many_users_measured"  # many-users rows of a seed whose configurations are not all measured yet


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def run_regimes(
    settings: RegimeSettings,
    out_dir: Path,
    *,
    regimes: tuple[str, ...] = REGIMES,
    command: str = "",
    log: Log = print,
    published: Path | None = None,
    report_only: bool = False,
) -> dict:
    """Run ``regimes`` for every seed, resumable per (seed, regime): each is written to
    ``out_dir/regimes.json`` as soon as it ends, and one measured before with the same settings is kept
    (so the regimes of a tier can be run one at a time, or seed by seed, into one report). ``many-users``
    also resumes within a seed, per case (its rows so far are saved under ``many_users_measured``).

    ``published``: the report's JSON in ``docs/benchmarks/`` (tracked by git, unlike ``out_dir``). Where
    ``out_dir`` holds no document of these settings the run continues from it (a fresh clone redoes
    nothing published), and it is rewritten with every save, so a stopped run's cases can be committed.

    ``report_only``: measure nothing; return the document as stored (for rewriting the report)."""
    from mixdpo.bench.sections import hardware

    unknown = sorted(set(regimes) - set(REGIMES))
    if unknown:
        raise ConfigError("regimes", f"unknown {unknown}; choose from {', '.join(REGIMES)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "regimes.json"
    wanted = json.loads(json.dumps(settings.to_dict()))  # as stored: tuples are lists in JSON

    def _same(stored: dict | None) -> bool:  # seeds may be run one by one into one document
        return stored is not None and {**stored, "seeds": None} == {**wanted, "seeds": None}

    document = _read(path)
    if not _same(document.get("settings")) and published is not None:
        document = _read(published)

    def save() -> None:
        for target in filter(None, (path, published)):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(document, indent=2))

    if report_only:  # the stored document as it is, written where the report's links point
        if not _same(document.get("settings")):
            where = f"{path}" + ("" if published is None else f" or {published}")
            raise ConfigError("report-only", f"nothing measured with these settings in {where}; run the "
                              "regimes without --report-only first")  # fmt: skip
        save()
        return document
    if not _same(document.get("settings")):
        document = {"settings": wanted, "seeds": {}}
        shutil.rmtree(out_dir / "runs", ignore_errors=True)  # partial cases of other settings
    wanted["seeds"] = sorted(set(document["settings"]["seeds"]) | set(wanted["seeds"]))
    document["settings"] = wanted
    earlier = [c for c in document.get("commands", [document.get("command", "")]) if c and c != command]
    document |= {"command": command, "commands": [*earlier, command],
                 "hardware": hardware(("torch", "transformers", "peft")),
                 "hypotheses": HYPOTHESES}  # fmt: skip

    for seed in settings.seeds:
        measured = document["seeds"].setdefault(str(seed), {"wall_s": 0.0})
        for regime in regimes:
            if _KEYS[regime] in measured:
                log(f"{regime}, seed {seed}: measured before, kept")
                continue
            log(f"{regime}, seed {seed}")
            work_dir = out_dir / "runs" / f"s{seed}" / regime
            clock = [time.perf_counter()]

            def spent(measured: dict = measured, clock: list = clock) -> None:
                # the wall time is counted as cases are saved, so a resumed regime's total includes the
                # cases measured before it stopped
                measured["wall_s"] += time.perf_counter() - clock[0]
                clock[0] = time.perf_counter()

            if regime == "many-users":
                partial = measured.setdefault(_PARTIAL, [])

                def keep(row: dict[str, Any], partial: list = partial) -> None:
                    partial.append(row)
                    spent()
                    save()

                rows = run_many_users(settings, seed, work_dir, log, kept=list(partial), on_row=keep)
                del measured[_PARTIAL]
            else:
                rows = run_few_shot_users(settings, seed, work_dir, log)
            measured[_KEYS[regime]] = rows
            spent()
            shutil.rmtree(work_dir, ignore_errors=True)
            save()
    for folder in sorted((out_dir / "runs").glob("**"), reverse=True):  # leftovers: empty seed folders
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return document
