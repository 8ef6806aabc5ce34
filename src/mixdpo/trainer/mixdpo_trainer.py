"""``MixDPOTrainer``: a ``transformers.Trainer`` whose every minibatch is one stochastic EM step.

    inputs ──MixturePolicy──> log pi_k(y+/-|x) [B, K], log pi_ref [B, R], gate logits
           ──objective──>     E-step (responsibilities q, detached) then the M-step loss
           ──Trainer──>       backward, optimizer step (experts at learning_rate, gate at gate_learning_rate)

Everything else is the Trainer's: gradient accumulation, mixed precision, accelerate / DDP / DeepSpeed,
checkpointing and resume, ``report_to`` loggers, progress bars. Metrics use TRL's names where they exist
(see :mod:`mixdpo.objective.metrics`) and are averaged over the steps between two log events, as TRL's
``DPOTrainer`` does. With K = 1 the loss is exactly DPO's.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from transformers import Trainer
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from mixdpo.data import PreferenceCollator, PreferenceDataset
from mixdpo.errors import MixDPOError, NumericalFault, TrainingInterrupted
from mixdpo.gating import GlobalGate
from mixdpo.objective import mix_dpo_objective, objective_metrics, robbins_monro_step_size
from mixdpo.policy import MixturePolicy
from mixdpo.reference import ReferenceCache, ReferenceTable, attach_reference
from mixdpo.trainer import checkpoints, distributed
from mixdpo.trainer.callbacks import CompactPrinterCallback, CompactProgressCallback, MetricsJsonlCallback
from mixdpo.trainer.collapse import ApplyCollapseActions, CollapseEvent, CollapseMonitor
from mixdpo.trainer.config import MixDPOConfig
from mixdpo.trainer.dataset_pass import no_grad_batches
from mixdpo.trainer.frozen_experts import FrozenExpertScores
from mixdpo.trainer.gate_features import StandardiseGateFeatures
from mixdpo.trainer.guards import InterruptHandler, NonFiniteGuard
from mixdpo.trainer.schedule import ObjectiveSchedule

logger = logging.getLogger(__name__)


class PolicyUsers:
    """The policy's user table as the collator's ``user_vocab`` (id string -> row, -1 if unknown)."""

    def __init__(self, policy: MixturePolicy):
        self.policy = policy

    def index(self, label: str | int) -> int:
        return int(self.policy.user_ids([str(label)])[0])


def _dataset_users(dataset: Dataset | None) -> tuple[list[str], int]:
    if isinstance(dataset, PreferenceDataset):
        return dataset.user_vocab().labels, dataset.num_user_features
    return [], 0


class MixDPOTrainer(Trainer):
    """Train a :class:`~mixdpo.policy.MixturePolicy` with Mix-DPO / MoE-DPO.

    Args:
        model: the policy; default: built from ``args`` (its user table from ``train_dataset``'s users).
        args: the :class:`MixDPOConfig`.
        train_dataset, eval_dataset: :class:`~mixdpo.data.PreferenceDataset` (or any dataset of tokenized
            pairs with ``example_index``).
        processing_class: the tokenizer (default: the policy's).
        data_collator: default :class:`~mixdpo.data.PreferenceCollator` with the policy's user table.
        reference_cache: where precomputed reference log-probs live (default: ``args.reference_cache_dir``).
        callbacks, optimizers: as for ``transformers.Trainer``.
    """

    def __init__(
        self,
        model: MixturePolicy | None = None,
        args: MixDPOConfig | None = None,
        train_dataset: Dataset | None = None,
        eval_dataset: Dataset | None = None,
        processing_class: Any = None,
        data_collator: Any = None,
        callbacks: list | None = None,
        optimizers: tuple = (None, None),
        reference_cache: ReferenceCache | None = None,
    ):
        args = args if args is not None else MixDPOConfig()
        if model is None:
            users, num_features = _dataset_users(train_dataset)
            needs_users = args.gate in ("user", "prompt+user")
            if needs_users and not users:
                raise MixDPOError(
                    f"gate {args.gate!r} needs a user_id column in the training data; add one or use "
                    "gate 'global' / 'prompt'"
                )
            model = MixturePolicy.create(
                args.policy_config(), users=users if needs_users else (), num_user_features=num_features
            )
        self.policy = model
        model.sequential_experts_enable(args.sequential_experts)
        if data_collator is None:
            data_collator = PreferenceCollator.from_tokenizer(
                model.tokenizer, padding_side="right", user_vocab=PolicyUsers(model) if model.users else None
            )
        callbacks = list(callbacks or [])
        if args.output_dir and not any(isinstance(c, MetricsJsonlCallback) for c in callbacks):
            callbacks.append(MetricsJsonlCallback(Path(args.output_dir) / "metrics.jsonl"))
        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class or model.tokenizer,
            callbacks=callbacks,
            optimizers=optimizers,
        )
        distributed.configure_for_launch(self)
        # The Trainer prints ~30 metrics per log event; show a short line instead (all go to metrics.jsonl).
        if args.disable_tqdm:
            self.remove_callback(PrinterCallback)
            self.add_callback(CompactPrinterCallback)
        else:
            self.remove_callback(ProgressCallback)
            self.add_callback(CompactProgressCallback)
        self.interrupt = InterruptHandler()
        self.nonfinite = NonFiniteGuard(args.max_nonfinite_steps)
        self.add_callback(self.interrupt)
        self.add_callback(self.nonfinite)
        self.add_callback(ApplyCollapseActions(self))
        self.add_callback(StandardiseGateFeatures(self))
        self.collapse = None
        if args.collapse_action != "off":
            self.collapse = CollapseMonitor(
                model.num_experts, args.collapse_min_usage, args.collapse_patience, args.collapse_tolerance
            )
        self.collapse_events: list[CollapseEvent] = []
        self._pending_collapse: list[tuple[CollapseEvent, int]] = []
        self.reference_cache = reference_cache or ReferenceCache(args.reference_cache_dir)
        self._reference_tables: dict[int, ReferenceTable] = {}
        self._active_table: dict[str, ReferenceTable | None] = {"train": None, "eval": None}
        self.frozen_experts = FrozenExpertScores(self)
        self._metrics: dict[str, dict[str, list[float]]] = {
            "train": defaultdict(list),
            "eval": defaultdict(list),
        }
        self._schedule: ObjectiveSchedule | None = None

    # --- optimizer: experts and gate at their own learning rates ----------------------------------
    def create_optimizer(self, model: torch.nn.Module | None = None) -> torch.optim.Optimizer:
        if self.optimizer is not None:
            return self.optimizer
        policy = self.policy
        gate_ids = {id(p) for p in policy.gate.parameters()}
        decay = set(self.get_decay_parameter_names(policy))
        groups: dict[str, list[torch.nn.Parameter]] = {"decay": [], "no_decay": [], "gate": []}
        for name, p in policy.named_parameters():
            if not p.requires_grad:
                continue
            groups["gate" if id(p) in gate_ids else "decay" if name in decay else "no_decay"].append(p)
        param_groups = [
            {"params": groups["decay"], "weight_decay": self.args.weight_decay},
            {"params": groups["no_decay"], "weight_decay": 0.0},
            {"params": groups["gate"], "weight_decay": 0.0, "lr": self.args.gate_learning_rate},
        ]
        param_groups = [g for g in param_groups if g["params"]]
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, policy)
        optimizer_kwargs.pop("params", None)
        self.optimizer = optimizer_cls(param_groups, **optimizer_kwargs)
        return self.optimizer

    # --- reference log-probs, computed once per dataset --------------------------------------------
    def reference_table(self, dataset: Dataset) -> ReferenceTable | None:
        """The dataset's precomputed reference log-probs (and prompt features), from the on-disk cache or
        computed now with one no-grad pass; None when precomputation is off."""
        if not self.args.precompute_ref_log_probs or not isinstance(dataset, PreferenceDataset):
            return None
        if id(dataset) in self._reference_tables:
            return self._reference_tables[id(dataset)]
        policy = self.policy
        key = policy.reference_key(dataset.fingerprint, dataset.settings.to_dict())
        # With several processes the first computes and writes the cache entry while the others wait at a
        # barrier, then load it: the references are computed once, not once per process. The pass forks
        # the RNG, so a cache miss and a cache hit leave the same RNG state behind.
        with self.args.main_process_first(desc="reference log-probs"):
            table = self.reference_cache.get_or_compute(
                key,
                policy.reference_score_fn(),
                lambda: no_grad_batches(self, dataset, desc="reference log-probs (once per dataset)"),
                len(dataset),
                require_prompt_features=policy.gate.needs_prompt_features,
            )
        self._reference_tables[id(dataset)] = table
        return table

    def get_train_dataloader(self) -> DataLoader:
        self._active_table["train"] = self.reference_table(self.train_dataset)
        self.frozen_experts.activate("train", self.train_dataset)
        return super().get_train_dataloader()

    def get_eval_dataloader(self, eval_dataset: Dataset | str | None = None) -> DataLoader:
        dataset = eval_dataset if isinstance(eval_dataset, Dataset) else self.eval_dataset
        if isinstance(eval_dataset, str) and isinstance(self.eval_dataset, dict):
            dataset = self.eval_dataset[eval_dataset]
        self._active_table["eval"] = self.reference_table(dataset) if dataset is not None else None
        self.frozen_experts.activate("eval", dataset)
        return super().get_eval_dataloader(eval_dataset)

    # --- the EM step ---------------------------------------------------------------------------------
    def schedule(self) -> ObjectiveSchedule:
        if self._schedule is None:
            args = self.args
            self._schedule = ObjectiveSchedule(
                args.objective_config(),
                num_experts=self.policy.num_experts,
                total_steps=max(self.state.max_steps, 1),
                estep_warmup_steps=args.estep_warmup_steps,
                estep_warmup_mode=args.estep_warmup_mode,
                gate_warmup_steps=args.resolved_gate_warmup_steps(),
                prior_ramp_steps=args.resolved_estep_prior_ramp_steps(),
                final_temperature=args.estep_final_temperature,
                anneal_steps=args.estep_anneal_steps,
                schedule=args.estep_schedule,
            )
        return self._schedule

    def training_step(self, model: torch.nn.Module, inputs: dict[str, Any], *args: Any, **kwargs: Any):
        if not self.args.sequential_experts:
            return super().training_step(model, inputs, *args, **kwargs)
        with distributed.sequential_experts_gradient_sync(
            model
        ):  # DDP: nested backward passes, averaged by hand
            return super().training_step(model, inputs, *args, **kwargs)

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One stochastic EM step on a minibatch: E-step (detached q) and the M-step loss."""
        mode = "train" if model.training else "eval"
        table = self._active_table[mode]
        if table is not None:
            inputs = attach_reference(inputs, table)
        out = model(self.frozen_experts.attach(inputs, mode))
        step = self.state.global_step
        settings = self.schedule().at(step)
        result = mix_dpo_objective(
            out.chosen_logps,
            out.rejected_logps,
            out.ref_chosen_logps,
            out.ref_rejected_logps,
            out.gate_logits,
            settings.objective,
            estep_temperature=settings.temperature,
        )
        gate = self.policy.gate
        if mode == "train" and isinstance(gate, GlobalGate) and gate.mode == "closed_form":
            rho = robbins_monro_step_size(step, self.args.robbins_monro_kappa, self.args.robbins_monro_offset)
            reduce_sum = self._reduce_sum if self.accelerator.num_processes > 1 else None
            gate.update(result.q, rho, reduce_sum=reduce_sum)
        self._store_metrics(
            objective_metrics(result)
            | {
                "em/estep_temperature": torch.tensor(settings.temperature),
                "em/estep_prior_weight": torch.tensor(settings.objective.estep_prior_weight),
            },
            mode,
        )
        if mode == "train" and self.collapse is not None:
            self._watch_collapse(result.q, result.margins.detach(), step)
        loss = result.loss.total
        return (loss, {"q": result.q, "margins": result.margins.detach()}) if return_outputs else loss

    def _watch_collapse(self, q: torch.Tensor, margins: torch.Tensor, step: int) -> None:
        usage = q.mean(0)
        for event in self.collapse.update(q, margins, step):
            others = usage.clone()
            others[event.expert] = -1.0
            # Acting needs the parameters untouched until backward: queued until the step ends.
            self._pending_collapse.append((event, int(others.argmax())))

    def apply_collapse_actions(self) -> None:
        """Report (and with collapse_action=reseed, repair) the collapses detected during the last step."""
        for event, busiest in self._pending_collapse:
            action = "reported"
            trainable = any(p.requires_grad for p in self.policy.backend.expert_parameters(event.expert))
            if self.args.collapse_action == "reseed" and trainable:
                noise = self.args.init_noise if self.args.init_noise > 0 else 0.01
                self.policy.backend.reseed_expert(
                    event.expert, busiest, noise, seed=self.args.seed + event.step
                )
                self.policy.gate.split_expert(busiest, event.expert)
                if self.optimizer is not None:  # fresh Adam moments for the new copy
                    for p in self.policy.backend.expert_parameters(event.expert):
                        self.optimizer.state.pop(p, None)
                action = f"reseeded from expert {busiest}"
            event = dataclasses.replace(event, action=action)
            self.collapse_events.append(event)
            what = "unused" if event.kind == "dead" else f"a duplicate of expert {event.twin}"
            logger.warning(
                "step %d: expert %d is %s (usage %.3f); %s",
                event.step,
                event.expert,
                what,
                event.usage,
                action,
            )
        self._pending_collapse.clear()

    def _reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        return self.accelerator.reduce(tensor, reduction="sum")

    def _store_metrics(self, metrics: dict[str, torch.Tensor], mode: str) -> None:
        names = list(metrics)
        values = torch.stack([metrics[n].detach().float().reshape(()) for n in names]).to(self.args.device)
        # One gather for all metrics: the mean over processes of each process's batch mean.
        values = self.accelerator.gather_for_metrics(values[None]).reshape(-1, len(names)).mean(0)
        for name, value in zip(names, values.tolist(), strict=True):
            self._metrics[mode][name].append(value)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        metrics = {key: sum(values) / len(values) for key, values in self._metrics[mode].items() if values}
        if mode == "eval":
            metrics = {f"eval_{key}": value for key, value in metrics.items()}
        elif metrics:
            metrics["train/skipped_nonfinite_steps"] = float(self.nonfinite.skipped)
            metrics["train/collapse_events"] = float(len(self.collapse_events))
        logs = {**logs, **metrics}
        super().log(logs, start_time)
        self._metrics[mode].clear()

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    # --- saving and resuming: checkpoints are loadable policies --------------------------------------
    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs: Any):
        """``Trainer.train``; ``resume_from_checkpoint=True`` takes the last *complete* checkpoint. Raises
        :class:`~mixdpo.errors.TrainingInterrupted` after a SIGINT/SIGTERM checkpoint and
        :class:`~mixdpo.errors.NumericalFault` when too many steps in a row had non-finite gradients."""
        if resume_from_checkpoint is True:
            resume_from_checkpoint = checkpoints.last_complete_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise MixDPOError(
                    f"nothing to resume: {self.args.output_dir} has no complete checkpoint-N directory "
                    "(set save_strategy=steps to write them, or drop --resume)"
                )
        result = super().train(resume_from_checkpoint=resume_from_checkpoint or None, **kwargs)
        if self.nonfinite.failed:
            guard = self.nonfinite
            raise NumericalFault(
                f"training stopped at step {self.state.global_step}: {guard.consecutive} steps in a row had "
                f"non-finite (inf/NaN) gradients (first at step {guard.first_bad_step}; {guard.skipped} "
                "skipped in all). Lower learning_rate, keep max_grad_norm, use model_dtype=float32, or look "
                "for extreme rows in the data"
            )
        if self.interrupt.signal_name is not None:
            checkpoint = Path(self.args.output_dir) / f"checkpoint-{self.state.global_step}"
            written = str(checkpoint) if (checkpoint / checkpoints.COMPLETE_MARKER).is_file() else None
            raise TrainingInterrupted(written, self.interrupt.signal_name)
        return result

    def _save_checkpoint(self, model: torch.nn.Module, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
        if self.args.should_save and folder.is_dir():
            checkpoints.mark_complete(
                folder, self.state.global_step, [e.to_dict() for e in self.collapse_events]
            )

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        # under FSDP / ZeRO-3 Trainer.save_model passes the full state gathered from the (live) shards
        self.accelerator.unwrap_model(self.model).save_pretrained(output_dir, state_dict=state_dict)
        torch.save(self.args, Path(output_dir) / "training_args.bin")

    def _load_from_checkpoint(self, checkpoint: str, model: torch.nn.Module | None = None) -> None:
        checkpoints.load_policy_checkpoint(self.accelerator.unwrap_model(model or self.model), checkpoint)

    def _load_best_model(self) -> None:
        self._load_from_checkpoint(self.state.best_model_checkpoint)
