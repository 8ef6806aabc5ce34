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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mixdpo.bench.quality_cases import ABLATIONS, MOE_GATE, QualityCase, QualitySettings

Log = Callable[[str], None]
# reward axis of each task's generation metric, and what the slices are
AXES = {"multi-reward": ("sentiment", "readability", "length"), "cross-domain": ("length",),
        "personas": ("sentiment",)}  # fmt: skip
SLICE_BY = {"multi-reward": None, "cross-domain": "domain", "personas": "group"}
EVAL_KEYS = ("mixture_accuracy", "per_group_accuracy", "ari", "nmi", "routing_accuracy", "expert_usage",
             "group_to_expert", "oracle_accuracy")  # fmt: skip


def _silent(message: str) -> None:
    del message


def training_options(case: QualityCase, settings: QualitySettings, groups: int) -> dict[str, Any]:
    """The ``MixDPOConfig`` options of a case: identical for every method but K and the gate."""
    random_model = case.model.startswith("random:")
    gate = MOE_GATE[case.task] if case.method == "moe-dpo" else "global"
    options = {
        "model": case.model,
        "num_experts": 1 if case.method == "dpo" else groups,
        "gate": gate,
        "backend": "lora",
        "lora_r": settings.lora_r,
        # SmolLM2: adapters on the top 4 blocks keep a step cheap (as the demo does); tiny models: all
        "lora_top_layers": None if random_model else 4,
        "beta": settings.beta,
        "gate_learning_rate": settings.gate_learning_rates[gate],
        "learning_rate": settings.random_learning_rate if random_model else settings.learning_rate,
        "per_device_train_batch_size": settings.batch,
        "per_device_eval_batch_size": 16,
        "max_steps": settings.max_steps,
        "estep_warmup_steps": settings.estep_warmup_steps,
        "max_length": settings.random_max_length if random_model else settings.max_length,
        "seed": case.seed,
        "logging_steps": max(1, settings.max_steps // 5),
        "disable_tqdm": True,
    }
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


def generation_metrics(
    policy, task_name: str, rows: list[dict], settings: QualitySettings, seed: int
) -> dict:
    """``{source: {"<axis>[<slice>]": mean reward}}`` for sources reference, expert:k and mixture."""
    from mixdpo.rewards import score_texts

    slice_by = SLICE_BY[task_name]
    prompts = _generation_prompts(rows, settings.generation_prompts, slice_by)
    texts = [r["prompt"] for r in prompts]
    users = [r.get("user_id") for r in prompts] if policy.users else None
    sources = ["reference"] + [f"expert:{k}" for k in range(policy.num_experts)] + ["mixture"]
    out: dict[str, dict[str, float]] = {}
    for source in sources:
        routing = "sample" if source == "mixture" else source
        generated = policy.generate(
            texts, users=users, routing=routing, max_new_tokens=settings.max_new_tokens, seed=seed, top_p=0.95
        ).texts
        scores = score_texts(list(AXES[task_name]), generated)
        metrics: dict[str, list[float]] = defaultdict(list)
        for i, row in enumerate(prompts):
            label = f"[{row[slice_by]}]" if slice_by else ""
            for axis in AXES[task_name]:
                metrics[f"{axis}{label}"].append(float(scores[axis][i]))
        out[source] = {key: sum(v) / len(v) for key, v in sorted(metrics.items())}
    return out


def run_quality_case(
    case: QualityCase, settings: QualitySettings, work_dir: Path, log: Log = _silent
) -> dict:
    """Train and evaluate one case in ``work_dir``; returns the JSON row of the benchmark."""
    from mixdpo.policy import MixturePolicy
    from mixdpo.tasks import write_task
    from mixdpo.trainer.config_io import load_config
    from mixdpo.workflows.train import train_run

    start = time.perf_counter()
    sizes = settings.task_sizes.get(case.task, {})
    # Plain-text prompts: short sequences, and the same rows for models with and without a chat template.
    files = write_task(case.task, work_dir / "data", seed=case.seed, format="text", **sizes)
    groups = json.loads(files["meta"].read_text())["groups"]
    options = training_options(case, settings, len(groups))
    options |= {"output_dir": str(work_dir / "run"), "train_file": str(files["train"]),
                "eval_file": str(files["eval"])}  # fmt: skip
    config = load_config(None, [f"{key}={json.dumps(value)}" for key, value in options.items()])
    result = train_run(config, log=log)
    evaluation = result.eval or {}
    report = json.loads((result.run_dir / "data_report.json").read_text())
    row: dict[str, Any] = {
        "case": case.to_dict(),
        "num_experts": options["num_experts"],
        "gate": options["gate"],
        "backend": options["backend"],
        "learning_rate": options["learning_rate"],
        # pairs read and pairs left out (too long for max_length, or invalid) per split
        "pairs": {
            split: {"read": r["rows_read"], "left_out": len(r["invalid"]) + len(r["unfit"])}
            for split, r in report.items()
        },
        "eval": {key: evaluation.get(key) for key in EVAL_KEYS},
        "generation": None,
    }
    if settings.generation_prompts:
        policy = MixturePolicy.from_pretrained(result.policy_dir)
        eval_rows = [json.loads(line) for line in files["eval"].read_text(encoding="utf-8").splitlines()]
        row["generation"] = generation_metrics(policy, case.task, eval_rows, settings, case.seed)
    row["wall_s"] = time.perf_counter() - start
    return row
