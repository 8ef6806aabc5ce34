"""``personalize_run``: refit only the gate for new users (or new domains); the experts stay frozen.

This is the paper's personalisation without retraining experts: a new user's pairs are explained by the
experts that already exist, so stochastic EM with frozen experts only moves the gate. For a user gate
each new user gets a table row initialised from the learned fallback (the population prior) and learns
K numbers; a prompt gate refits its MLP on the new domain's prompts.

``train="experts"`` does the opposite, gate frozen and experts fine-tuned on the new pairs: what a
single policy (plain or conditioned DPO) has to do to learn new users, for comparison.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mixdpo.data import build_preference_dataset
from mixdpo.errors import ConfigError
from mixdpo.evaluation import evaluate_policy
from mixdpo.gating import UserGate
from mixdpo.trainer import MixDPOTrainer
from mixdpo.trainer.config_io import load_config
from mixdpo.workflows.train import PREDICTIONS_FILE, load_run_policy

Log = Callable[[str], None]


def personalize_run(
    run_dir: str | Path,
    data: str | Path,
    *,
    out_dir: str | Path | None = None,
    eval_data: str | Path | None = None,
    epochs: float = 5.0,
    max_steps: int = -1,
    learning_rate: float | None = None,
    batch_size: int = 8,
    train: str = "gate",
    log: Log = print,
) -> dict[str, Any]:
    """Fit the gate of ``run_dir``'s policy to the pairs in ``data``, experts frozen (``train="gate"``), or
    fine-tune the experts with the gate frozen (``train="experts"``).

    Args:
        run_dir: a finished run (its ``policy/`` and ``config.yaml`` are read, never modified).
        data: pairs of the new users / domain (a ``user_id`` column for user gates).
        out_dir: where the personalised run goes (default ``<run_dir>/personalized``).
        eval_data: held-out pairs of the same users, evaluated after fitting.
        epochs, max_steps, learning_rate, batch_size: the training budget (default learning rate: the run's
            ``gate_learning_rate`` for the gate, its ``learning_rate`` for the experts).
        train: ``gate`` or ``experts``.

    Returns:
        A summary (also written to ``<out_dir>/personalize.json``): new users, trainable parameters per new
        user, the learning rate used, wall time, and the evaluation when ``eval_data`` is given (per pair
        in ``<out_dir>/eval_predictions.jsonl``, as ``mixdpo train`` writes it).
    """
    if train not in ("gate", "experts"):
        raise ConfigError("train", f"got {train!r}; choose gate (refit the gate) or experts (fine-tune them)")
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "personalized"
    policy = load_run_policy(run_dir)
    overrides = [f"output_dir={out_dir}", f"train_file={data}", "eval_file=null", "baseline=false"]
    overrides += ["estep_warmup_steps=0", "gate_warmup_steps=0", f"per_device_train_batch_size={batch_size}"]
    overrides += [f"num_train_epochs={epochs}", f"max_steps={max_steps}", "save_strategy=no"]
    if learning_rate is not None:
        overrides.append(f"{'gate_learning_rate' if train == 'gate' else 'learning_rate'}={learning_rate}")
    config = load_config(run_dir / "config.yaml", overrides)
    dataset, report = build_preference_dataset(data, policy.tokenizer, config.tokenization_settings())
    log(f"personalisation data {data}: {report.summary()}")
    user_gate = policy.gate if isinstance(policy.gate, UserGate) else getattr(policy.gate, "user", None)
    new_users: list[str] = []
    if user_gate is not None:
        new_users = policy.add_users(dataset.user_vocab().labels)
        user_gate.user_dropout = 0.0  # the new rows themselves must learn, not the fallback
        shown = ", ".join(new_users[:10]) + (" ..." if len(new_users) > 10 else "")
        log(f"{len(new_users)} new user(s): {shown}")
    policy.backend.set_experts_trainable(train == "experts")
    if train == "experts":
        for p in policy.gate.parameters():
            p.requires_grad_(False)
    gate_trained = sum(p.numel() for p in policy.gate.parameters() if p.requires_grad)
    experts_trained = sum(p.numel() for p in policy.backend.parameters() if p.requires_grad)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    trainer = MixDPOTrainer(policy, config, train_dataset=dataset)
    trainer.train()
    seconds = time.perf_counter() - start
    trainer.save_model(str(out_dir / "policy"))
    summary: dict[str, Any] = {
        "trained": train,
        "new_users": new_users,
        # a new user's own parameters: their K gate logits; fine-tuned experts are shared by everyone
        "parameters_per_new_user": policy.num_experts if new_users and train == "gate" else None,
        "gate_parameters_trained": gate_trained,
        "expert_parameters_trained": experts_trained,
        "wall_time_s": seconds,
        "learning_rate": config.learning_rate if train == "experts" else config.gate_learning_rate,
        # gate-only refits score the frozen experts once instead of in every step
        "experts_scored_once": trainer.frozen_experts.passes > 0,
        "pairs": len(dataset),
    }
    if eval_data is not None:
        heldout, _ = build_preference_dataset(eval_data, policy.tokenizer, config.tokenization_settings())
        summary["eval"] = evaluate_policy(policy, heldout, batch_size=config.per_device_eval_batch_size,
                                          predictions=out_dir / PREDICTIONS_FILE)  # fmt: skip
        log(f"held-out accuracy after personalisation: {summary['eval']['mixture_accuracy']:.3f}")
    (out_dir / "personalize.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
