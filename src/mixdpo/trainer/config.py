"""``MixDPOConfig``: every option of a Mix/MoE-DPO run, as a ``transformers.TrainingArguments`` subclass.

As TRL's ``DPOConfig`` does, it adds the method's options to the Trainer's (batch size, learning rate,
gradient accumulation, mixed precision, checkpointing, ``report_to``...), so the ecosystem's knobs all
work. Each field's ``help`` is the documentation: ``mixdpo train --help`` prints it and
``docs/config.md`` is generated from it. Options are grouped:

- model and experts: ``model``, ``num_experts``, ``backend`` and its ``lora_*`` / ``heads_*`` options,
  ``init_noise`` (symmetry breaking);
- gate: ``gate``, ``gate_*``, ``user_dropout``;
- objective and E-step: ``beta``, ``loss_type``, ``estep*``, regulariser weights;
- data: ``train_file``, ``eval_file``, truncation, user features;
- run: ``baseline`` (also train plain DPO for comparison), reference-log-prob caching.

Defaults that differ from ``TrainingArguments``: ``learning_rate`` 5e-5 (LoRA-friendly),
``logging_steps`` 10, ``remove_unused_columns`` False, ``save_strategy`` "no" (set "steps" to checkpoint),
``output_dir`` "runs/mixdpo". (``report_to`` is "none" by default in transformers 5.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments

from mixdpo.data import TokenizationSettings
from mixdpo.errors import ConfigError
from mixdpo.gating import PROMPT_GATE_KINDS
from mixdpo.objective import ObjectiveConfig
from mixdpo.policy import PolicyConfig
from mixdpo.trainer.distributed import launched_on_cpus_only

ESTEP_WARMUP_MODES = ("hard", "gumbel")


@dataclass
class MixDPOConfig(TrainingArguments):
    # ----- model and experts ------------------------------------------------------------------------
    model: str = field(
        default="builtin:smollm2-135m",
        metadata={
            "help": "Base model / expert checkpoint: builtin:smollm2-135m (offline), random:<preset> (tiny "
            "random model: gpt2-tiny, llama-tiny, gpt2-small, llama-small), a local directory, a .gguf file, "
            "or a Hub id."
        },
    )
    model_seed: int = field(
        default=0,
        metadata={
            "help": "Seeds random: base models, the experts' symmetry-breaking noise and the gate's init."
        },
    )
    model_dtype: str = field(
        default="float32", metadata={"help": "Weights dtype: float32, bfloat16 or float16."}
    )
    reference_model: str | None = field(
        default=None, metadata={"help": "A separate reference model spec (default: the base model itself)."}
    )
    num_experts: int = field(default=2, metadata={"help": "K, the number of experts (1 = plain DPO)."})
    backend: str = field(
        default="lora",
        metadata={
            "help": "Expert backend: lora (K LoRA adapters on one frozen base), heads (shared trunk + K "
            "copies of the top blocks) or independent (K full models)."
        },
    )
    lora_r: int = field(default=8, metadata={"help": "lora: adapter rank."})
    lora_alpha: int = field(default=16, metadata={"help": "lora: scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "lora: dropout on the adapter input."})
    lora_target_modules: str = field(
        default="all-linear",
        metadata={"help": "lora: modules to adapt (PEFT syntax; comma-separated names or all-linear)."},
    )
    lora_top_layers: int | None = field(
        default=None,
        metadata={
            "help": "lora: adapt only the top N blocks (backward stops there: a much cheaper step); "
            "None = all."
        },
    )
    heads_num_layers: int | None = field(
        default=None, metadata={"help": "heads: top blocks copied per expert (default min(2, blocks - 1))."}
    )
    heads_expert_lm_head: bool = field(
        default=False, metadata={"help": "heads: give each expert its own LM head."}
    )
    heads_trunk_trainable: bool = field(
        default=False,
        metadata={"help": "heads: train the shared trunk too (keeps a frozen copy as reference)."},
    )
    per_expert_references: bool = field(
        default=False, metadata={"help": "independent: one reference model per expert (pi_ref_k)."}
    )
    init_noise: float = field(
        default=0.01,
        metadata={
            "help": "Symmetry breaking: seeded perturbation of each expert at creation (lora: std of B "
            "entries; heads/independent: relative noise). 0 = off."
        },
    )
    average_logps: bool = field(
        default=False,
        metadata={"help": "Score sequences by mean instead of sum of token log-probs (IPO-style)."},
    )
    sequential_experts: bool = field(
        default=False,
        metadata={
            "help": "lora/independent: run the experts' forward+backward one expert at a time (after one "
            "pass of all experts without autograd for the E-step): stored activations of 1 expert instead "
            "of K, for ~1/3 more compute; same gradients. Single process or DDP (not FSDP / DeepSpeed)."
        },
    )
    # ----- gate ---------------------------------------------------------------------------------------
    gate: str = field(
        default="global",
        metadata={
            "help": "Gate: global (Mix-DPO weights), prompt (MLP on prompt features), user (user-id table "
            "with a learned fallback for unseen users) or prompt+user (MoE-DPO)."
        },
    )
    global_gate_mode: str = field(
        default="learned",
        metadata={"help": "global gate: learned (gradient) or closed_form (Robbins-Monro average of q)."},
    )
    gate_hidden_dim: int = field(default=64, metadata={"help": "prompt gate: hidden width (0 = linear)."})
    gate_dropout: float = field(default=0.0, metadata={"help": "prompt gate: dropout."})
    gate_features: str = field(
        default="last",
        metadata={
            "help": "prompt gate: what it reads, mean-pooled over the prompt: last (the reference's final "
            "hidden state) or embeddings (its token embeddings: no forward pass)."
        },
    )
    user_dropout: float = field(
        default=0.1,
        metadata={
            "help": "user gate: probability of training on the unseen-user fallback instead of the user."
        },
    )
    gate_learning_rate: float = field(
        default=1e-3, metadata={"help": "Learning rate of the gate's parameters."}
    )
    gate_warmup_steps: int | None = field(
        default=None,
        metadata={
            "help": "Steps during which the gate is not trained (experts specialise first). Default: "
            "estep_warmup_steps for a gate that reads the prompt (prompt, prompt+user), 0 otherwise."
        },
    )
    gate_temperature: float = field(default=1.0, metadata={"help": "Temperature of the gate softmax."})
    gate_top_k: int | None = field(
        default=None, metadata={"help": "At inference, route among the top-k experts only (None = all)."}
    )
    robbins_monro_kappa: float = field(
        default=0.7,
        metadata={"help": "closed_form gate: step size rho_t = (t + offset)^-kappa, kappa in (0.5, 1]."},
    )
    robbins_monro_offset: float = field(default=10.0, metadata={"help": "closed_form gate: offset t0 >= 1."})
    # ----- objective and E-step ---------------------------------------------------------------------
    beta: float = field(default=0.1, metadata={"help": "DPO beta: the implicit reward is beta * log-ratio."})
    loss_type: str = field(
        default="sigmoid", metadata={"help": "Per-expert pair loss: sigmoid (DPO), robust, ipo or hinge."}
    )
    label_smoothing: float = field(
        default=0.0, metadata={"help": "Assumed label-flip rate in [0, 0.5) (cDPO with sigmoid, robust DPO)."}
    )
    objective: str = field(
        default="em",
        metadata={"help": "em (responsibility-weighted M-step loss) or marginal (-log-likelihood directly)."},
    )
    estep: str = field(
        default="soft",
        metadata={"help": "E-step: soft (exact posterior), hard (argmax), tempered, or gumbel (sampled)."},
    )
    estep_temperature: float = field(
        default=1.0,
        metadata={"help": "Temperature of tempered / gumbel E-steps at the start of the schedule."},
    )
    estep_final_temperature: float | None = field(
        default=None, metadata={"help": "Temperature at the end of the schedule (None = constant)."}
    )
    estep_schedule: str = field(
        default="exponential",
        metadata={"help": "Temperature schedule: constant, linear, exponential or cosine."},
    )
    estep_anneal_steps: int | None = field(
        default=None,
        metadata={"help": "Steps over which the temperature is annealed (None = the whole run)."},
    )
    straight_through: bool = field(
        default=False, metadata={"help": "gumbel E-step: use the one-hot sample (a draw from the posterior)."}
    )
    estep_warmup_steps: int = field(
        default=10,
        metadata={
            "help": "Symmetry breaking: the first N steps use hard responsibilities (see estep_warmup_mode), "
            "which lets near-identical experts separate quickly. 0 = off. No effect with one expert."
        },
    )
    estep_warmup_mode: str = field(
        default="hard",
        metadata={"help": "Warm-up E-step: hard (argmax: classification EM) or gumbel (a sample per pair)."},
    )
    estep_prior_ramp_steps: int | None = field(
        default=None,
        metadata={
            "help": "N >= 1: the E-step ignores the gate during the E-step warm-up (q ~ w^a exp(l), a = 0: "
            "a gate trained then learns from the experts' likelihoods without biasing them) and a reaches "
            "1 N steps after it; 0: the posterior throughout. Default: 1 for a gate that reads the prompt, "
            "0 otherwise."
        },
    )
    gate_loss_weight: float = field(default=1.0, metadata={"help": "lambda_gate: weight of the gate's loss."})
    load_balance_weight: float = field(
        default=0.0, metadata={"help": "Weight of KL(mean routing || uniform) (0 = off)."}
    )
    gate_entropy_weight: float = field(
        default=0.0, metadata={"help": "Weight of the mean gate entropy (> 0 sharper routing, < 0 smoother)."}
    )
    # ----- data --------------------------------------------------------------------------------------
    train_file: str | None = field(
        default=None,
        metadata={
            "help": "Training pairs: JSONL/JSON/CSV/Parquet file, a datasets directory, or a Hub dataset."
        },
    )
    eval_file: str | None = field(default=None, metadata={"help": "Held-out pairs (same formats)."})
    train_split: str | None = field(default=None, metadata={"help": "Split of a DatasetDict / Hub dataset."})
    eval_split: str | None = field(
        default=None, metadata={"help": "Split of the eval DatasetDict / Hub dataset."}
    )
    max_length: int | None = field(default=512, metadata={"help": "Most tokens of prompt + completion."})
    max_prompt_length: int | None = field(default=None, metadata={"help": "Most prompt tokens."})
    max_completion_length: int | None = field(default=None, metadata={"help": "Most tokens per completion."})
    truncation_mode: str = field(
        default="keep_end", metadata={"help": "keep_end (keep the prompt's end) or keep_start."}
    )
    user_feature_columns: list[str] | None = field(
        default=None, metadata={"help": "Numeric columns that form the user features of a user gate."}
    )
    skip_invalid: bool = field(
        default=False, metadata={"help": "Report and skip invalid rows instead of stopping at the first."}
    )
    precompute_ref_log_probs: bool = field(
        default=True,
        metadata={
            "help": "Compute reference log-probs (and prompt features) once per dataset, cached on disk."
        },
    )
    reference_cache_dir: str | None = field(
        default=None, metadata={"help": "Cache directory (default $MIXDPO_CACHE_DIR or ~/.cache/mixdpo)."}
    )
    # ----- reliability ---------------------------------------------------------------------------------
    max_nonfinite_steps: int = field(
        default=5,
        metadata={
            "help": "Steps with non-finite gradients are skipped; training stops after this many in a row."
        },
    )
    collapse_action: str = field(
        default="warn",
        metadata={
            "help": "Expert collapse (an unused or duplicated expert): warn (report it), reseed (re-seed it "
            "as a perturbed copy of the busiest expert and split that expert's gate weight), or off."
        },
    )
    collapse_min_usage: float = field(
        default=0.02, metadata={"help": "An expert whose mean responsibility stays below this is unused."}
    )
    collapse_patience: int = field(
        default=25,
        metadata={"help": "Consecutive steps an expert must look unused / duplicated to be reported."},
    )
    collapse_tolerance: float = field(
        default=1e-4,
        metadata={"help": "Experts whose margins differ by less than this on every pair are duplicates."},
    )
    # ----- run ---------------------------------------------------------------------------------------
    baseline: bool = field(
        default=False,
        metadata={
            "help": "Also train plain DPO (K = 1, same budget) into <output_dir>/baseline for comparison."
        },
    )
    # ----- TrainingArguments defaults we change ---------------------------------------------------------
    output_dir: str | None = field(default="runs/mixdpo", metadata={"help": "The run directory."})
    learning_rate: float = field(default=5e-5, metadata={"help": "Learning rate of the experts."})
    logging_steps: float = field(default=10, metadata={"help": "Log every N steps."})
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Kept False: mixdpo's collator needs every column."}
    )
    save_strategy: str = field(
        default="no", metadata={"help": "Checkpointing: no, steps (every save_steps) or epoch."}
    )

    def __post_init__(self) -> None:
        if not self.use_cpu and launched_on_cpus_only():
            # transformers 5.24 / accelerate 1.15 under torchrun on a machine with no accelerator initialise
            # the process group but leave every rank training alone (DistributedType.NO) unless use_cpu is set
            self.use_cpu = True
        if self.sequential_experts and self.backend == "heads":
            raise ConfigError(
                "sequential_experts", "is for backend lora or independent; heads already runs its trunk once"
            )
        super().__post_init__()
        if self.dataloader_pin_memory and not torch.cuda.is_available():
            self.dataloader_pin_memory = False  # pinning needs an accelerator (torch warns otherwise)
        if self.estep_warmup_mode not in ESTEP_WARMUP_MODES:
            raise ConfigError("estep_warmup_mode", f"got {self.estep_warmup_mode!r}; choose hard or gumbel")
        for name in ("estep_warmup_steps", "gate_warmup_steps", "estep_prior_ramp_steps"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ConfigError(name, f"must be >= 0, got {getattr(self, name)}")
        if self.collapse_action not in ("warn", "reseed", "off"):
            raise ConfigError("collapse_action", f"got {self.collapse_action!r}; choose warn, reseed or off")
        if self.max_nonfinite_steps < 1:
            raise ConfigError("max_nonfinite_steps", f"must be >= 1, got {self.max_nonfinite_steps}")
        if not self.gate_learning_rate > 0:
            raise ConfigError("gate_learning_rate", f"must be > 0, got {self.gate_learning_rate}")
        # Build the parts once here so that a bad value fails before any model is loaded.
        self.policy_config()
        self.objective_config()
        self.tokenization_settings()

    def policy_config(self) -> PolicyConfig:
        """The :class:`PolicyConfig` of the mixture this run trains."""
        if self.backend == "lora":
            targets = self.lora_target_modules
            target = (
                targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()]
            )
            options = {"r": self.lora_r, "alpha": self.lora_alpha, "dropout": self.lora_dropout,
                       "target_modules": target, "top_layers": self.lora_top_layers}  # fmt: skip
        elif self.backend == "heads":
            options = {
                "num_expert_layers": self.heads_num_layers,
                "expert_lm_head": self.heads_expert_lm_head,
                "trunk_trainable": self.heads_trunk_trainable,
            }
        else:
            options = {"per_expert_references": self.per_expert_references}
        options |= {"init_noise": self.init_noise, "average_logps": self.average_logps}
        prompt = {"hidden_dim": self.gate_hidden_dim, "dropout": self.gate_dropout}
        user = {"user_dropout": self.user_dropout}
        gate_options = {
            "global": {"global_mode": self.global_gate_mode}, "prompt": prompt, "user": user,
            "prompt+user": prompt | user,
        }.get(self.gate, {})  # fmt: skip
        return PolicyConfig(
            model=self.model,
            num_experts=self.num_experts,
            backend=self.backend,
            backend_options=options,
            gate=self.gate,
            gate_options=gate_options,
            beta=self.beta,
            gate_temperature=self.gate_temperature,
            gate_features=self.gate_features,
            top_k=self.gate_top_k,
            dtype=self.model_dtype,
            seed=self.model_seed,
            reference_model=self.reference_model,
        )

    def objective_config(self) -> ObjectiveConfig:
        """The :class:`ObjectiveConfig` of the main phase (after the E-step warm-up): the options of the
        same names (``estep_prior_weight`` is the schedule's, see ``estep_prior_ramp_steps``)."""
        names = [name for name in ObjectiveConfig.field_names() if name != "estep_prior_weight"]
        return ObjectiveConfig(**{name: getattr(self, name) for name in names})

    def resolved_gate_warmup_steps(self) -> int:
        """``gate_warmup_steps``, or its default: ``estep_warmup_steps`` for a gate that reads the prompt.

        Why: a prompt gate trained on the warm-up's near-arbitrary hard assignments keeps that partition as
        the E-step's prior (SmolLM2-135M cross-domain, seed 0: 45%, ARI 0 trained from step 0; 87.5%, ARI 1.0
        held back for the 10 warm-up steps)."""
        if self.gate_warmup_steps is not None:
            return self.gate_warmup_steps
        return self.estep_warmup_steps if self.gate in PROMPT_GATE_KINDS else 0

    def resolved_estep_prior_ramp_steps(self) -> int:
        """``estep_prior_ramp_steps``, or its default: 1 for a gate that reads the prompt, else 0.

        Why: a prompt gate can then train during the second half of a longer warm-up (the quality
        benchmark's ``estep_warmup_steps=20 gate_warmup_steps=10``) without biasing the assignments, as it
        did when it took one expert to 100% (BENCHMARKS.md, cross-domain). With the default gate warm-up it
        is a no-op: the (zero-initialised) gate is still uniform throughout the E-step warm-up."""
        if self.estep_prior_ramp_steps is not None:
            return self.estep_prior_ramp_steps
        return 1 if self.gate in PROMPT_GATE_KINDS else 0

    def tokenization_settings(self) -> TokenizationSettings:
        return TokenizationSettings(
            max_length=self.max_length,
            max_prompt_length=self.max_prompt_length,
            max_completion_length=self.max_completion_length,
            truncation_mode=self.truncation_mode,
        )
