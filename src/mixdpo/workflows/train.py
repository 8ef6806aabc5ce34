"""``train_run``: data -> MixDPOTrainer -> saved policy -> evaluation -> report, in one run directory."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixdpo.data import BuildReport, PreferenceDataset, build_preference_dataset
from mixdpo.errors import ConfigError, MixDPOError
from mixdpo.evaluation import evaluate_policy, write_report
from mixdpo.policy import MixturePolicy
from mixdpo.policy.build import load_base
from mixdpo.trainer import MixDPOConfig, MixDPOTrainer
from mixdpo.trainer.config_io import config_to_yaml
from mixdpo.trainer.distributed import parameters_sharded, whole_model_loading

Log = Callable[[str], None]
PREDICTIONS_FILE = "eval_predictions.jsonl"  # per-pair rows of the held-out evaluation, next to eval.json


@dataclass
class RunResult:
    """What a training run produced (paths inside ``run_dir``; ``eval`` is eval.json's content)."""

    run_dir: Path
    policy_dir: Path
    eval: dict[str, Any] | None
    report: Path | None
    baseline_dir: Path | None = None


def _silent(message: str) -> None:
    del message


def _report_dict(report: BuildReport) -> dict[str, Any]:
    return {
        "rows_read": report.rows_read,
        "invalid": [str(s) for s in report.invalid],
        "unfit": [str(s) for s in report.unfit],
        "summary": report.summary(),
    }


def load_run_policy(run_dir: str | Path) -> MixturePolicy:
    """The trained policy of a run directory (a clear error when it is not one)."""
    policy_dir = Path(run_dir) / "policy"
    if not policy_dir.is_dir():
        raise MixDPOError(f"{run_dir} is not a finished mixdpo run (no policy/ directory); train one first")
    return MixturePolicy.from_pretrained(policy_dir)


def _datasets(
    config: MixDPOConfig, tokenizer: Any, log: Log
) -> tuple[PreferenceDataset, PreferenceDataset | None]:
    if not config.train_file:
        raise ConfigError(
            "train_file", "is required: point it at your preference pairs (JSONL, CSV, Parquet...)"
        )
    common = {
        "settings": config.tokenization_settings(),
        "user_feature_columns": config.user_feature_columns,
        "skip_invalid": config.skip_invalid,
    }
    train, train_report = build_preference_dataset(
        config.train_file, tokenizer, split=config.train_split, **common
    )
    log(f"train data {config.train_file}: {train_report.summary()}")
    reports = {"train": _report_dict(train_report)}
    evaluation = None
    if config.eval_file:
        evaluation, eval_report = build_preference_dataset(
            config.eval_file, tokenizer, split=config.eval_split, **common
        )
        log(f"eval data {config.eval_file}: {eval_report.summary()}")
        reports["eval"] = _report_dict(eval_report)
    if config.should_save:
        out = Path(config.output_dir)
        (out / "data_report.json").write_text(json.dumps(reports, indent=2) + "\n")
    return train, evaluation


def _train_policy(
    config: MixDPOConfig,
    train: PreferenceDataset,
    evaluation: PreferenceDataset | None,
    base: Any,
    resume: bool | str,
) -> tuple[MixturePolicy, MixDPOTrainer]:
    needs_users = config.gate in ("user", "prompt+user")
    users = train.user_vocab().labels if needs_users else []
    if needs_users and not users:
        raise MixDPOError(f"gate {config.gate!r} needs a user_id column in {config.train_file}")
    policy = MixturePolicy.create(
        config.policy_config(), users=users, num_user_features=train.num_user_features, base=base
    )
    trainer = MixDPOTrainer(policy, config, train_dataset=train, eval_dataset=evaluation)
    trainer.train(resume_from_checkpoint=resume or None)
    trainer.save_model(str(_saved(trainer)))
    return policy, trainer


def _baseline_config(config: MixDPOConfig) -> MixDPOConfig:
    changes = {"output_dir": str(Path(config.output_dir) / "baseline"), "num_experts": 1, "gate": "global"}
    changes |= {"baseline": False, "estep_warmup_steps": 0, "gate_warmup_steps": 0}
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.init}
    return MixDPOConfig(**{**values, **changes})


def _evaluate(
    config: MixDPOConfig,
    evaluation: PreferenceDataset,
    trained: tuple[MixturePolicy, MixDPOTrainer],
    baseline: tuple[MixturePolicy | None, MixDPOTrainer | None],
    writer: bool,
    predictions: Path,
) -> dict[str, Any] | None:
    """Evaluate the trained policy (and baseline) on the writing process; None on the others.

    With several processes only the first evaluates (the others would repeat its work). Where the launch
    sharded the parameters (FSDP, ZeRO-3) the live policy holds shards only, so the first process reads the
    saved policy back whole from its directory instead. The policy's per-pair predictions go to
    ``predictions`` (JSON Lines)."""
    pairs = [trained, baseline]
    sharded = any(t is not None and parameters_sharded(t) for _, t in pairs)
    # every process: the reference cache's first-process-computes barrier needs them all
    tables = [None if t is None or sharded else t.reference_table(evaluation) for _, t in pairs]
    if not writer:
        return None
    if sharded:
        with whole_model_loading():
            pairs = [
                (None, None) if p is None else (MixturePolicy.from_pretrained(_saved(t)), t) for p, t in pairs
            ]
    (policy, _), (base_policy, _) = pairs
    return evaluate_policy(
        policy,
        evaluation,
        batch_size=config.per_device_eval_batch_size,
        baseline=base_policy,
        reference_table=tables[0],
        baseline_reference_table=tables[1],
        predictions=predictions,
    )


def _saved(trainer: MixDPOTrainer) -> Path:
    return Path(trainer.args.output_dir) / "policy"


def train_run(config: MixDPOConfig, *, resume: bool | str = False, log: Log = print) -> RunResult:
    """Train a mixture (and, with ``config.baseline``, plain DPO), evaluate on ``eval_file`` and report.

    Args:
        config: the run's options; ``output_dir`` is the run directory.
        resume: True to resume from the run's last checkpoint, or a checkpoint path.
        log: progress messages.
    """
    run_dir = Path(config.output_dir)
    # Under torchrun / accelerate launch every process runs this function; only the first writes files and
    # prints (config.should_save is True on the world's process 0 only).
    writer = config.should_save
    if not writer:
        log = _silent
    run_dir.mkdir(parents=True, exist_ok=True)
    if writer:
        (run_dir / "config.yaml").write_text(config_to_yaml(config))
    log(f"loading {config.model}")
    base = load_base(config.policy_config())
    train, evaluation = _datasets(config, base.tokenizer, log)
    log(f"training {config.num_experts} {config.backend} expert(s) with a {config.gate} gate -> {run_dir}")
    policy, trainer = _train_policy(config, train, evaluation, base, resume)
    baseline = baseline_trainer = None
    baseline_dir = None
    if config.baseline:
        baseline_config = _baseline_config(config)
        baseline_dir = Path(baseline_config.output_dir)
        baseline_dir.mkdir(parents=True, exist_ok=True)
        if writer:
            (baseline_dir / "config.yaml").write_text(config_to_yaml(baseline_config))
        log(f"training the plain-DPO baseline (K = 1) -> {baseline_dir}")
        baseline, baseline_trainer = _train_policy(
            baseline_config, train, evaluation, load_base(baseline_config.policy_config()), False
        )
    result = None
    report = None
    if evaluation is not None:
        log(f"evaluating on {config.eval_file}")
        trained, base_pair = (policy, trainer), (baseline, baseline_trainer)
        result = _evaluate(config, evaluation, trained, base_pair, writer, run_dir / PREDICTIONS_FILE)
        if writer:
            (run_dir / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    if not writer:
        return RunResult(run_dir, run_dir / "policy", result, None, baseline_dir)
    report = write_report(
        run_dir,
        eval_result=result or {},
        metrics_path=run_dir / "metrics.jsonl",
        title=f"mixdpo run: {config.num_experts} experts ({config.backend}), {config.gate} gate",
        baseline_name="plain DPO (K=1)" if baseline is not None else None,
        model_name=f"mixture (K={config.num_experts})",
    )
    log(f"done: {run_dir / 'policy'}, report {report}")
    return RunResult(run_dir, run_dir / "policy", result, report, baseline_dir)
