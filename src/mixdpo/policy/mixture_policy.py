"""``MixturePolicy``: K experts + a gate + references + tokenizer, as one module that trains, saves, loads,
scores and generates.

    pi(y | x, u) = sum_k w_k(x, u) pi_k(y | x)      (sequence-level mixture; see :mod:`.generation`)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from mixdpo import __version__
from mixdpo.atomic import fsync_tree
from mixdpo.batch import (
    ATTENTION_MASK,
    COMPLETION_MASK,
    INPUT_IDS,
    POLICY_CHOSEN_LOGPS,
    POLICY_REJECTED_LOGPS,
    PROMPT_ATTENTION_MASK,
    PROMPT_FEATURES,
    PROMPT_INPUT_IDS,
    REF_CHOSEN_LOGPS,
    REF_REJECTED_LOGPS,
    UNKNOWN_USER,
    USER_FEATURES,
    USER_IDS,
)
from mixdpo.errors import MixDPOError
from mixdpo.experts import ExpertBackend, HeadsExperts, IndependentExperts, LoraExperts
from mixdpo.experts.base import strip_prefix
from mixdpo.gating import Gate, GateInputs, UserGate, gate_from_config, sparsify_top_k
from mixdpo.logprobs import split_chosen_rejected
from mixdpo.models import LoadedModel
from mixdpo.policy.build import build_backend, build_policy_gate, load_base
from mixdpo.policy.checkpointing import disable_block_checkpointing, enable_block_checkpointing
from mixdpo.policy.config import PolicyConfig
from mixdpo.policy.generation import Generation, Prompt, generate
from mixdpo.policy.scoring import Scores, score
from mixdpo.policy.sequential import sequential_expert_logps
from mixdpo.reference import ReferenceKey

FORMAT_VERSION = 1
CONFIG_FILE = "mixdpo_policy.json"


@dataclass
class PolicyOutputs:
    """What one forward gives the objective (B pairs, K experts, R reference columns).

    Attributes:
        chosen_logps, rejected_logps: [B, K] log pi_k(y+/- | x) (differentiable).
        ref_chosen_logps, ref_rejected_logps: [B, R] reference log-probs (no gradient).
        gate_logits: [B, K] (or [K] for a global gate).
    """

    chosen_logps: torch.Tensor
    rejected_logps: torch.Tensor
    ref_chosen_logps: torch.Tensor
    ref_rejected_logps: torch.Tensor
    gate_logits: torch.Tensor


class MixturePolicy(nn.Module):
    """A mixture of K expert policies with a gate.

    Build one with :meth:`create` (fresh, symmetry-broken experts, uniform gate) or
    :meth:`from_pretrained` (a saved policy; needs no training code).

    Attributes:
        policy_config: the :class:`PolicyConfig` (not ``config``: Trainer and accelerate expect that name
            to hold a transformers ``PretrainedConfig``).
        backend: the :class:`~mixdpo.experts.ExpertBackend` (experts and references).
        gate: the :class:`~mixdpo.gating.Gate`.
        tokenizer: the base model's tokenizer.
        users: known user ids, in the order of the user gate's table rows.
    """

    def __init__(
        self,
        config: PolicyConfig,
        backend: ExpertBackend,
        gate: Gate,
        tokenizer: PreTrainedTokenizerBase,
        users: Sequence[str] = (),
        num_user_features: int = 0,
    ):
        super().__init__()
        self.policy_config, self.backend, self.gate, self.tokenizer = config, backend, gate, tokenizer
        backend.gate_features = config.gate_features  # the backend computes the gate's features
        self.users = list(users)
        self._user_index = {u: i for i, u in enumerate(self.users)}
        self.num_user_features = num_user_features
        # see sequential_experts_enable; a training-time setting, not saved with the policy
        self.sequential_experts = False

    @classmethod
    def create(
        cls,
        config: PolicyConfig,
        *,
        users: Sequence[str] = (),
        num_user_features: int = 0,
        base: LoadedModel | None = None,
    ) -> MixturePolicy:
        """Build fresh experts and gate on the base model of ``config.model`` (loaded now, or the given
        ``base``, which the experts then take over: don't reuse it for another policy)."""
        base = base if base is not None else load_base(config)
        backend = build_backend(config, base)
        gate = build_policy_gate(config, backend, num_users=len(users), num_user_features=num_user_features)
        return cls(config, backend, gate, base.tokenizer, users, num_user_features)

    @property
    def num_experts(self) -> int:
        return self.policy_config.num_experts

    @property
    def _no_split_modules(self) -> list[str]:
        """Class names of the transformer blocks in the experts and references, e.g. ``LlamaDecoderLayer``.

        FSDP's default wrap units: accelerate's ``TRANSFORMER_BASED_WRAP`` reads this when the launch config
        names no classes, so one shipped config fits every architecture (naming a class the model lacks is
        an error there)."""
        names: list[str] = []
        for module in self.modules():
            if isinstance(module, PreTrainedModel):
                names.extend(getattr(module, "_no_split_modules", None) or [])
        return list(dict.fromkeys(names))

    # --- users ---------------------------------------------------------------------------------
    def user_ids(self, users: Sequence[str | None]) -> torch.Tensor:
        """[B] table rows of user id strings; unknown users and None map to ``UNKNOWN_USER`` (-1)."""
        return torch.tensor(
            [self._user_index.get(u, UNKNOWN_USER) if u is not None else UNKNOWN_USER for u in users]
        )

    def add_users(self, new_users: Sequence[str]) -> list[str]:
        """Register users unseen in training (rows initialised from the gate's fallback); returns the
        ids actually added (ids already known are skipped). For personalisation by refitting the gate."""
        user_gate = self._user_gate()
        added = [u for u in dict.fromkeys(new_users) if u not in self._user_index]
        user_gate.add_users(len(added))
        for u in added:
            self._user_index[u] = len(self.users)
            self.users.append(u)
        return added

    def _user_gate(self) -> UserGate:
        gate = self.gate
        user_gate = gate if isinstance(gate, UserGate) else getattr(gate, "user", None)
        if not isinstance(user_gate, UserGate):
            raise MixDPOError(f"this policy's gate is {self.policy_config.gate!r}, which has no user table")
        return user_gate

    # --- forward -------------------------------------------------------------------------------
    def gate_inputs(self, batch: dict[str, torch.Tensor]) -> GateInputs:
        """Gate context of a batch; prompt features are computed (no grad) unless the batch carries them."""
        b = batch[INPUT_IDS].shape[0] // 2
        features = batch.get(PROMPT_FEATURES)
        if features is None and self.gate.needs_prompt_features:
            if PROMPT_INPUT_IDS not in batch:
                raise ValueError(
                    "the prompt gate needs 'prompt_input_ids' / 'prompt_attention_mask' in the batch"
                )
            features = self.backend.prompt_features(batch[PROMPT_INPUT_IDS], batch[PROMPT_ATTENTION_MASK])
        return GateInputs(
            batch_size=b,
            prompt_features=features,
            user_ids=batch.get(USER_IDS),
            user_features=batch.get(USER_FEATURES),
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> PolicyOutputs:
        """Policy and reference log-probs of chosen/rejected and gate logits of a ``mixdpo.batch`` batch.

        Precomputed columns in the batch replace forward passes: ``ref_*_logps`` the references',
        ``policy_*_logps`` the experts' (only valid while the experts are frozen, e.g. gate-only refits).
        """
        ids, mask, completion = batch[INPUT_IDS], batch[ATTENTION_MASK], batch[COMPLETION_MASK]
        gate_logits = self.gate(self.gate_inputs(batch))
        frozen = POLICY_CHOSEN_LOGPS in batch
        if REF_CHOSEN_LOGPS in batch:
            ref_c, ref_r = batch[REF_CHOSEN_LOGPS], batch[REF_REJECTED_LOGPS]
            if ref_c.dim() == 1:
                ref_c, ref_r = ref_c[:, None], ref_r[:, None]
            logps = None if frozen else self._expert_logps(ids, mask, completion)
        elif isinstance(self.backend, HeadsExperts) and not frozen:
            logps, ref = self.backend.forward_with_reference(ids, mask, completion)
            ref_c, ref_r = split_chosen_rejected(ref)
        else:
            # Reference first: the lora backend keeps the policy forward's adapter routing in place for a
            # backward that recomputes activations (gradient checkpointing).
            ref_c, ref_r = split_chosen_rejected(self.backend.reference_logps(ids, mask, completion))
            logps = None if frozen else self._expert_logps(ids, mask, completion)
        if frozen:
            chosen, rejected = batch[POLICY_CHOSEN_LOGPS], batch[POLICY_REJECTED_LOGPS]
        else:
            chosen, rejected = split_chosen_rejected(logps)
        return PolicyOutputs(chosen, rejected, ref_c, ref_r, gate_logits)

    def _expert_logps(self, ids: torch.Tensor, mask: torch.Tensor, completion: torch.Tensor) -> torch.Tensor:
        if self.sequential_experts and self.training:
            return sequential_expert_logps(self.backend, ids, mask, completion)
        return self.backend(ids, mask, completion)

    def routing_weights(self, inputs: GateInputs) -> torch.Tensor:
        """[B, K] inference-time routing weights w_k(x, u): softmax(top_k(logits) / T)."""
        logits = self.gate(inputs)
        if logits.dim() == 1:
            logits = logits.unsqueeze(0).expand(inputs.batch_size, -1)
        logits = sparsify_top_k(logits.float(), self.policy_config.top_k)
        return torch.softmax(logits / self.policy_config.gate_temperature, dim=-1)

    # --- cached references ---------------------------------------------------------------------
    def reference_key(self, dataset_fingerprint: str, tokenization: dict[str, Any]) -> ReferenceKey:
        """The reference-cache key of this policy's references on a tokenized dataset."""
        return ReferenceKey(
            dataset_fingerprint=dataset_fingerprint,
            model_id=self.backend.reference_identity() or self.policy_config.model,
            tokenization=tokenization,
            num_columns=self.backend.num_reference_columns,
            average=self.backend.average_logps,
            extra={"prompt_features": self._feature_key() if self.gate.needs_prompt_features else None},
        )

    def _feature_key(self) -> str:
        # the name cached tables of the final hidden state were stored under before embeddings existed
        return {"last": "mean-pooled-final-hidden"}.get(self.backend.gate_features, "mean-pooled-embeddings")

    def reference_score_fn(self) -> Callable[[dict[str, torch.Tensor]], tuple[torch.Tensor, ...]]:
        """A ``score_fn`` for :class:`mixdpo.reference.ReferenceCache`: batch -> (ref chosen [B, R], ref
        rejected [B, R][, prompt features [B, H]]), all from frozen models, so they can be computed once
        per dataset and attached to later batches (no reference forward passes after that)."""

        @torch.no_grad()
        def score_fn(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
            ref = self.backend.reference_logps(
                batch[INPUT_IDS], batch[ATTENTION_MASK], batch[COMPLETION_MASK]
            )
            chosen, rejected = split_chosen_rejected(ref)
            if not self.gate.needs_prompt_features:
                return chosen, rejected
            features = self.backend.prompt_features(batch[PROMPT_INPUT_IDS], batch[PROMPT_ATTENTION_MASK])
            return chosen, rejected, features

        return score_fn

    # --- inference -----------------------------------------------------------------------------
    def score(self, prompts: Sequence[Prompt], completions: Sequence[str], **kwargs: Any) -> Scores:
        """Per-expert implicit rewards, routing weights and mixture reward; see :func:`.scoring.score`."""
        return score(self, prompts, completions, **kwargs)

    def generate(self, prompts: Sequence[Prompt], **kwargs: Any) -> Generation:
        """Completions from the mixture with a routing choice; see :func:`.generation.generate`."""
        return generate(self, prompts, **kwargs)

    # --- memory ---------------------------------------------------------------------------------
    def activation_checkpointing_enable(
        self,
        activation_checkpointing_kwargs: dict[str, Any] | None = None,
        every_n_layers: int = 1,
        offload: bool = False,
    ) -> None:
        """Recompute block activations in backward instead of storing them (``Trainer`` calls this when
        ``activation_checkpointing`` / ``gradient_checkpointing`` is set). Applies to every transformer
        block of every expert, the heads backend's per-expert copies included; see
        :func:`.checkpointing.enable_block_checkpointing`."""
        enable_block_checkpointing(self, activation_checkpointing_kwargs, every_n_layers, offload)

    gradient_checkpointing_enable = activation_checkpointing_enable  # the pre-5.x name

    def activation_checkpointing_disable(self) -> None:
        disable_block_checkpointing(self)

    gradient_checkpointing_disable = activation_checkpointing_disable

    def sequential_experts_enable(self, enabled: bool = True) -> None:
        """Run the experts' training forward/backward one expert at a time (:mod:`.sequential`): stored
        activations of one expert instead of K, for one extra forward of all experts without autograd.
        Gradients are those of the joint step. ``lora`` and ``independent`` only: ``heads`` already runs
        its trunk once and keeps only the small per-expert tops."""
        if enabled and isinstance(self.backend, HeadsExperts):
            raise MixDPOError(
                "sequential_experts is for the lora and independent backends; heads already shares the trunk "
                "(its per-expert activations are the top blocks only). Turn sequential_experts off."
            )
        self.sequential_experts = enabled

    # --- persistence ---------------------------------------------------------------------------
    def save_pretrained(
        self, directory: str | Path, state_dict: dict[str, torch.Tensor] | None = None
    ) -> None:
        """Write config (JSON), experts (PEFT / safetensors / transformers formats), gate and tokenizer.

        Args:
            directory: the policy directory.
            state_dict: this policy's full state dict, e.g. gathered from FSDP / ZeRO-3 shards by
                ``Trainer.save_model``; None = the live parameters (whole unless sharded).
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        # The config file is removed first and written last (atomically): a save interrupted half-way
        # leaves a directory that refuses to load instead of one that loads mixed old and new weights.
        (directory / CONFIG_FILE).unlink(missing_ok=True)
        if state_dict is None:
            self.backend.save(directory / "experts")
            gate_state = self.gate.state_dict()
        else:
            self.backend.save(directory / "experts", strip_prefix(state_dict, "backend."))
            gate_state = strip_prefix(state_dict, "gate.")
        gate_state = {n: t.detach().contiguous() for n, t in gate_state.items()}
        save_file(gate_state, str(directory / "gate.safetensors"))
        self.tokenizer.save_pretrained(str(directory / "tokenizer"))
        meta: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "mixdpo_version": __version__,
            "policy": self.policy_config.to_dict(),
            "backend": self.backend.config(),
            "gate": self.gate.config(),
            "users": self.users,
            "num_user_features": self.num_user_features,
        }
        tmp = directory / f".{CONFIG_FILE}.tmp"
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
        fsync_tree(directory)
        os.replace(tmp, directory / CONFIG_FILE)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> MixturePolicy:
        """Load a policy written by :meth:`save_pretrained`; the base model is re-resolved from its spec and
        must have the same weights it had when the policy was saved."""
        directory = Path(directory)
        path = directory / CONFIG_FILE
        if not path.is_file():
            raise MixDPOError(
                f"{directory} is not a saved mixdpo policy (no {CONFIG_FILE}); pass a run's policy dir"
            )
        meta = json.loads(path.read_text())
        if meta.get("format_version", 0) > FORMAT_VERSION:
            raise MixDPOError(
                f"{directory} was saved by mixdpo {meta.get('mixdpo_version')} (format "
                f"{meta['format_version']}); this mixdpo ({__version__}) reads formats <= {FORMAT_VERSION}: "
                "upgrade mixdpo"
            )
        config = PolicyConfig.from_dict(meta["policy"])
        backend_config = meta["backend"]
        experts_dir = directory / "experts"
        if config.backend == "independent":
            backend: ExpertBackend = IndependentExperts.load(experts_dir, backend_config)
        else:
            base = load_base(config)
            saved = backend_config.get("base_identity")
            if saved and saved != base.identity:
                raise MixDPOError(
                    f"the base model {config.model!r} now has weights {base.identity}, but this policy was "
                    f"trained on {saved}; restore that checkpoint (or point 'model' in {path} at it)"
                )
            if config.backend == "lora":
                reference = None
                if config.reference_model is not None:
                    from mixdpo.models import load_model_and_tokenizer
                    from mixdpo.policy.build import torch_dtype

                    reference = load_model_and_tokenizer(
                        config.reference_model, dtype=torch_dtype(config.dtype), seed=config.seed
                    ).model
                backend = LoraExperts.load(experts_dir, base.model, backend_config, reference)
            else:
                backend = HeadsExperts.load(experts_dir, base.model, backend_config)
        gate = gate_from_config(meta["gate"])
        gate.load_state_dict(load_file(str(directory / "gate.safetensors")))
        tokenizer = AutoTokenizer.from_pretrained(str(directory / "tokenizer"))
        policy = cls(
            config, backend, gate, tokenizer, meta.get("users", []), meta.get("num_user_features", 0)
        )
        return policy.eval()
