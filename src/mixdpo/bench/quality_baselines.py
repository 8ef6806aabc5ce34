"""Baselines of ``mixdpo bench quality``, trained with the same budget, model, LoRA adapters and seeds as
the mixtures (every one is a single policy per model, K = 1):

- ``cond-dpo``: conditioned DPO (P-DPO style): plain DPO on prompts with what a mixture's gate reads
  written in front of them by :data:`CONDITION_TEMPLATE`: the user id on ``personas``, the domain on
  ``cross-domain``. ``multi-reward`` has no such condition (its axes are hidden), so it has no case.
- ``oracle-dpo``: one DPO policy per hidden group, trained on that group's pairs only (the labels a
  mixture never sees), each for the full step budget, each evaluated on its own group's held-out pairs:
  the upper bound a mixture tries to reach without labels. Its "mixture" generates every prompt with the
  prompt's own group's policy.
- ``trl-dpo``: TRL's ``DPOTrainer`` with the same LoRA adapters (rank, alpha, layers) and the same
  pairs, steps, batch, learning rate and beta: plain DPO by the reference implementation.
- ``wide-dpo`` (run by :func:`mixdpo.bench.quality.run_quality_case` as plain DPO): one LoRA adapter of
  rank K·r, the same trainable parameter count as the mixture's K adapters of rank r, so that "more
  parameters" does not explain a mixture's edge.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from mixdpo.bench.quality import (
    EVAL_KEYS,
    Log,
    generate_texts,
    generation_metrics,
    generation_prompts,
    read_rows,
    score_generations,
    train_and_evaluate,
)
from mixdpo.bench.quality_cases import QualityCase, QualitySettings
from mixdpo.tasks.registry import write_jsonl

# the row field a conditioned prompt shows, per task, and the name it is shown under
CONDITION_FIELD = {"personas": ("user_id", "user"), "cross-domain": ("domain", "domain"),
                   "reviews-users": ("user_id", "user")}  # fmt: skip
CONDITION_TEMPLATE = "[{name}: {value}] {prompt}"
SPLITS = ("train", "eval", "new_users")


def conditioned_prompt(task: str, row: dict) -> str:
    """``row``'s prompt with its condition in front, e.g. ``[user: user_07] User: Write a review...``."""
    field, name = CONDITION_FIELD[task]
    return CONDITION_TEMPLATE.format(name=name, value=row[field], prompt=row["prompt"])


def write_splits(files: dict[str, Path], out_dir: Path, transform) -> dict[str, Path]:
    """Each split of ``files`` rewritten row by row by ``transform`` (rows it maps to None dropped)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for split in SPLITS:
        if split in files:
            rows = [t for t in (transform(row) for row in read_rows(files[split])) if t is not None]
            if rows:
                written[split] = out_dir / f"{split}.jsonl"
                write_jsonl(rows, written[split])
    return written


def _row(case: QualityCase, options: dict[str, Any], pairs: dict, evaluation: dict) -> dict[str, Any]:
    return {
        "case": case.to_dict(),
        "num_experts": 1,
        "gate": "global",
        "backend": "lora",
        "learning_rate": options["learning_rate"],
        "pairs": pairs,
        "eval": {key: evaluation.get(key) for key in EVAL_KEYS},
        "generation": None,
    }


def run_baseline(
    case: QualityCase,
    settings: QualitySettings,
    options: dict[str, Any],
    files: dict[str, Path],
    work_dir: Path,
    log: Log,
) -> dict[str, Any]:
    """Train and evaluate the baseline ``case.method`` on the task's ``files``; returns its JSON row."""
    if case.method == "cond-dpo":
        return _conditioned(case, settings, options, files, work_dir, log)
    if case.method == "oracle-dpo":
        return _oracle(case, settings, options, files, work_dir, log)
    if case.method == "trl-dpo":
        from mixdpo.bench.quality_trl import run_trl_dpo

        return run_trl_dpo(case, settings, options, files, work_dir)
    raise ValueError(f"not a baseline: {case.method!r}")


def _conditioned(case, settings, options, files, work_dir, log) -> dict[str, Any]:
    from mixdpo.policy import MixturePolicy

    def condition(row: dict) -> dict:
        return row | {"prompt": conditioned_prompt(case.task, row)}

    written = write_splits(files, work_dir / "conditioned", condition)
    evaluation, pairs, policy_dir = train_and_evaluate(options, written, work_dir / "run", log)
    row = _row(case, options, pairs, evaluation)
    if settings.generation_prompts:
        policy = MixturePolicy.from_pretrained(policy_dir)
        row |= generation_metrics(policy, case.task, read_rows(written["eval"]), settings, case.seed)
    return row


def _oracle(case, settings, options, files, work_dir, log) -> dict[str, Any]:
    from mixdpo.policy import MixturePolicy

    groups = json.loads(files["meta"].read_text())["groups"]
    eval_rows = read_rows(files["eval"])
    counts = Counter(r["group"] for r in eval_rows)
    per_group, pairs, policies = {}, {}, []
    outcomes: list[str] | None = ["."] * len(eval_rows)  # every pair's outcome, each from its group's policy
    for i, group in enumerate(groups):
        own = write_splits(files, work_dir / f"group-{i}", lambda r, g=group: r if r["group"] == g else None)
        evaluation, group_pairs, policy_dir = train_and_evaluate(options, own, work_dir / f"run-{i}", log)
        per_group[group] = evaluation.get("mixture_accuracy")
        positions = [j for j, r in enumerate(eval_rows) if r["group"] == group]  # the group file's rows
        own_outcomes = evaluation.get("pair_correct")
        if outcomes is not None and own_outcomes is not None and len(own_outcomes) == len(positions):
            for j, outcome in zip(positions, own_outcomes, strict=True):
                outcomes[j] = outcome
        elif positions:
            outcomes = None
        for split, numbers in group_pairs.items():
            total = pairs.setdefault(split, {"read": 0, "left_out": 0})
            total["read"] += numbers["read"]
            total["left_out"] += numbers["left_out"]
        policies.append(policy_dir)
    known = [g for g in groups if per_group[g] is not None and counts[g]]
    mixture = sum(per_group[g] * counts[g] for g in known) / sum(counts[g] for g in known) if known else None
    evaluation = {"mixture_accuracy": mixture, "per_group_accuracy": per_group,
                  "group_to_expert": {g: i for i, g in enumerate(groups)},
                  "pair_correct": None if outcomes is None else "".join(outcomes)}  # fmt: skip
    row = _row(case, options, pairs, evaluation)
    row["num_experts"] = len(groups)  # one policy per group, each trained alone
    if settings.generation_prompts:
        prompts = generation_prompts(case.task, eval_rows, settings)
        texts = {}
        for i, policy_dir in enumerate(policies):
            policy = MixturePolicy.from_pretrained(policy_dir)
            if i == 0:
                texts["reference"] = generate_texts(policy, prompts, "reference", settings, case.seed)
            texts[f"expert:{i}"] = generate_texts(policy, prompts, "expert:0", settings, case.seed)
        # oracle routing: each prompt generated by its own group's policy
        texts["mixture"] = [texts[f"expert:{groups.index(r['group'])}"][j] for j, r in enumerate(prompts)]
        row |= score_generations(case.task, prompts, texts)
    return row
