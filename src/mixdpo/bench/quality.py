"""One case of ``mixdpo bench quality``: build the task, train (``mixdpo train``'s workflow), evaluate on
held-out pairs, and generate from held-out prompts with the reference, every expert and the mixture.

Generation metrics are mean rewards of the generated text per *slice* of the held-out prompts:

- ``multi-reward``: every axis (sentiment, readability, length) over all prompts;
- ``cross-domain``: length in words on movie prompts and on book prompts (movies should get shorter,
  books longer);
- ``personas``: sentiment of text generated for the fans' prompts and for the critics' (the mixture routes
  by user: fans should get more positive text than critics).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mixdpo.bench.quality_cases import (
    ABLATIONS,
    BASELINE_METHODS,
    MIXTURE_METHODS,
    MOE_GATE,
    QualityCase,
    QualitySettings,
)

Log = Callable[[str], None]
# reward axis of each task's generation metric, and what the slices are
AXES = {"multi-reward": ("sentiment", "readability", "length"), "cross-domain": ("length",),
        "personas": ("sentiment",)}  # fmt: skip
SLICE_BY = {"multi-reward": None, "cross-domain": "domain", "personas": "group"}
# pair_correct: every held-out pair's outcome (see pair_outcomes), for paired tests between methods
EVAL_KEYS = ("mixture_accuracy", "per_group_accuracy", "ari", "nmi", "routing_accuracy", "expert_usage",
             "group_to_expert", "oracle_accuracy", "num_pairs", "per_group_pairs",
             "pair_correct")  # fmt: skip


def _silent(message: str) -> None:
    del message


def training_options(case: QualityCase, settings: QualitySettings, groups: int) -> dict[str, Any]:
    """The ``MixDPOConfig`` options of a case: identical for every method but K and the gate."""
    random_model = case.model.startswith("random:")
    gate = MOE_GATE[case.task] if case.method == "moe-dpo" else "global"
    options = {
        "model": case.model,
        "num_experts": groups if case.method in MIXTURE_METHODS else 1,
        "gate": gate,
        "backend": "lora",
        # wide-dpo: one adapter of rank K*r, as many trainable parameters as the mixtures' K adapters
        "lora_r": settings.lora_r * (groups if case.method == "wide-dpo" else 1),
        # SmolLM2: adapters on the top 4 blocks keep a step cheap (as the demo does); tiny models: all
        "lora_top_layers": None if random_model else 4,
        "beta": settings.beta,
        "gate_learning_rate": settings.gate_learning_rates[gate],
        "learning_rate": settings.learning_rate_for(case.model),
        "per_device_train_batch_size": settings.batch,
        "per_device_eval_batch_size": 16,
        "max_steps": settings.max_steps,
        "max_length": settings.random_max_length if random_model else settings.max_length,
        "seed": case.seed,
        "logging_steps": max(1, settings.max_steps // 5),
        "disable_tqdm": True,
    } | settings.warmups_for(gate)
    if case.method == "moe-dpo" and options["gate"] == "user":
        options["user_dropout"] = 0.05  # trains the fallback for unseen users, as the demo does
    variant = dict(ABLATIONS[case.variant]) if case.variant else {}
    pretrained = variant.pop("pretrained", {})
    if not random_model:
        variant |= pretrained
    if variant.get("backend", "lora") != "lora":
        options.pop("lora_r")
        options.pop("lora_top_layers")
    return options | variant


def _generation_prompts(rows: list[dict], n: int, slice_by: str | None) -> list[dict]:
    """The first ``n`` rows with distinct prompts, balanced across slices (round-robin)."""
    by_slice: dict[str, list[dict]] = defaultdict(list)
    seen = set()
    for row in rows:
        key = json.dumps(row["prompt"]) + str(row.get("user_id"))
        if key in seen:
            continue
        seen.add(key)
        by_slice[str(row[slice_by]) if slice_by else "all"].append(row)
    chosen: list[dict] = []
    queues = [list(v) for _, v in sorted(by_slice.items())]
    while len(chosen) < n and any(queues):
        for queue in queues:
            if queue and len(chosen) < n:
                chosen.append(queue.pop(0))
    return chosen


def generation_prompts(task_name: str, rows: list[dict], settings: QualitySettings) -> list[dict]:
    """The held-out rows whose prompts every source generates from."""
    return _generation_prompts(rows, settings.generation_prompts, SLICE_BY[task_name])


def score_generations(
    task_name: str, prompts: list[dict], texts: dict[str, list[str]]
) -> dict[str, dict[str, Any]]:
    """The generation fields of a row, from ``texts[source]`` (one text per row of ``prompts``):

    - ``generation``: ``{source: {"<axis>[<slice>]": mean reward}}``;
    - ``generation_rewards``: ``{source: {axis: [reward of prompt i]}}``, in the order of ``prompts`` (the
      same for every source of a case and for every method of a task and seed), so that two sources can
      be compared prompt by prompt (:func:`mixdpo.bench.verdict.paired_difference`)."""
    from mixdpo.rewards import score_texts

    slice_by = SLICE_BY[task_name]
    means, rewards = {}, {}
    for source, source_texts in texts.items():
        scores = score_texts(list(AXES[task_name]), source_texts)
        rewards[source] = {axis: [float(x) for x in scores[axis]] for axis in AXES[task_name]}
        metrics: dict[str, list[float]] = defaultdict(list)
        for i, row in enumerate(prompts):
            label = f"[{row[slice_by]}]" if slice_by else ""
            for axis in AXES[task_name]:
                metrics[f"{axis}{label}"].append(rewards[source][axis][i])
        means[source] = {key: sum(v) / len(v) for key, v in sorted(metrics.items())}
    return {"generation": means, "generation_rewards": rewards}


def generate_texts(
    policy, prompts: list[dict], routing: str, settings: QualitySettings, seed: int
) -> list[str]:
    """One completion per prompt row from ``policy`` with ``routing`` (top-p 0.95, seeded)."""
    users = [r.get("user_id") for r in prompts] if policy.users else None
    return policy.generate(
        [r["prompt"] for r in prompts], users=users, routing=routing, max_new_tokens=settings.max_new_tokens,
        seed=seed, top_p=0.95,
    ).texts  # fmt: skip


def generation_metrics(
    policy, task_name: str, rows: list[dict], settings: QualitySettings, seed: int
) -> dict[str, dict[str, Any]]:
    """:func:`score_generations` of text generated by sources reference, expert:k and mixture."""
    prompts = generation_prompts(task_name, rows, settings)
    sources = ["reference"] + [f"expert:{k}" for k in range(policy.num_experts)] + ["mixture"]
    texts = {
        source: generate_texts(policy, prompts, "sample" if source == "mixture" else source, settings, seed)
        for source in sources
    }
    return score_generations(task_name, prompts, texts)


def pair_outcomes(predictions: Sequence[dict], num_rows: int) -> str:
    """Each row of the evaluation file as one character: "1" when the mixture preferred the chosen response
    (P_i > 1/2), "0" when not, "." when the row was not scored (left out as too long or invalid).

    ``predictions`` are :func:`~mixdpo.evaluation.pair_predictions` rows with their 1-based source ``row``.
    Methods scored on the same file give strings aligned pair by pair (a paired test's input)."""
    chars = ["."] * num_rows
    for p in predictions:
        chars[p["row"] - 1] = "1" if p["correct"] else "0"
    return "".join(chars)


def train_and_evaluate(options: dict[str, Any], files: dict[str, Path], work_dir: Path, log: Log) -> tuple:
    """Train ``mixdpo train``'s workflow with ``options`` on ``files``; returns (eval.json, pairs read and
    left out per split, policy directory)."""
    from mixdpo.evaluation import read_predictions
    from mixdpo.trainer.config_io import load_config
    from mixdpo.workflows.train import PREDICTIONS_FILE, train_run

    options = options | {"output_dir": str(work_dir), "train_file": str(files["train"]),
                         "eval_file": str(files["eval"])}  # fmt: skip
    config = load_config(None, [f"{key}={json.dumps(value)}" for key, value in options.items()])
    result = train_run(config, log=log)
    evaluation = dict(result.eval or {})
    predicted = result.run_dir / PREDICTIONS_FILE
    if evaluation and predicted.is_file():
        evaluation["pair_correct"] = pair_outcomes(read_predictions(predicted), len(read_rows(files["eval"])))
    report = json.loads((result.run_dir / "data_report.json").read_text())
    # pairs read and pairs left out (too long for max_length, or invalid) per split
    pairs = {
        split: {"read": r["rows_read"], "left_out": len(r["invalid"]) + len(r["unfit"])}
        for split, r in report.items()
    }
    return evaluation, pairs, result.policy_dir


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_quality_case(
    case: QualityCase, settings: QualitySettings, work_dir: Path, log: Log = _silent
) -> dict:
    """Train and evaluate one case in ``work_dir``; returns the JSON row of the benchmark."""
    from mixdpo.bench import quality_baselines
    from mixdpo.policy import MixturePolicy
    from mixdpo.tasks import write_task

    start = time.perf_counter()
    sizes = settings.task_sizes.get(case.task, {})
    # Plain-text prompts: short sequences, and the same rows for models with and without a chat template.
    files = write_task(case.task, work_dir / "data", seed=case.seed, format="text", **sizes)
    groups = json.loads(files["meta"].read_text())["groups"]
    options = training_options(case, settings, len(groups))
    if case.method in BASELINE_METHODS and case.method != "wide-dpo":  # wide-dpo is plain DPO, wider
        row = quality_baselines.run_baseline(case, settings, options, files, work_dir, log)
    else:
        evaluation, pairs, policy_dir = train_and_evaluate(options, files, work_dir / "run", log)
        row = {
            "case": case.to_dict(),
            "num_experts": options["num_experts"],
            "gate": options["gate"],
            "backend": options["backend"],
            "lora_r": options.get("lora_r"),
            "learning_rate": options["learning_rate"],
            "estep_warmup_steps": options["estep_warmup_steps"],
            "gate_warmup_steps": options.get("gate_warmup_steps"),  # None: the library's default
            "pairs": pairs,
            "eval": {key: evaluation.get(key) for key in EVAL_KEYS},
            "generation": None,
        }
        if settings.generation_prompts:
            policy = MixturePolicy.from_pretrained(policy_dir)
            row |= generation_metrics(policy, case.task, read_rows(files["eval"]), settings, case.seed)
    row["wall_s"] = time.perf_counter() - start
    return row
