"""``heads`` backend: a shared trunk computed once per batch and K copies of the top transformer blocks.

The base model's decoder is split at block L - M (L blocks, M = ``num_expert_layers``):

    trunk  = embeddings + blocks 0 .. L-M-1           (shared; frozen by default, then run without autograd)
    expert k = its own copy of blocks L-M .. L-1 + final norm (+ optionally its own LM head)
    reference = the original blocks L-M .. L-1 + final norm + LM head (frozen)

The trunk runs once for the whole batch; its output feeds the K expert tops and the reference top. The
per-block arguments the decoder builds internally (causal mask, rotary position embeddings...) are
captured from the trunk's last block with a forward pre-hook and passed to the top blocks unchanged, so
the split works for every architecture whose blocks all take the same arguments: GPT-2 and the
Llama family (Llama, Mistral, Qwen2/3 with full attention in every layer) are registered in
``ARCHITECTURES``; others get a clear error.

With a trainable trunk the reference can no longer share it, so a frozen copy of the whole base model is
kept as the reference (twice the base memory).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from mixdpo.errors import ConfigError
from mixdpo.experts.base import ExpertBackend
from mixdpo.experts.symmetry import add_relative_noise_, expert_generator
from mixdpo.logprobs import completion_logps_from_hidden, position_ids_from_attention_mask


@dataclass(frozen=True)
class Architecture:
    """Where a causal LM keeps its decoder, block list and final norm."""

    decoder: str
    blocks: str
    norm: str


ARCHITECTURES: dict[str, Architecture] = {
    "gpt2": Architecture("transformer", "h", "ln_f"),
    "llama": Architecture("model", "layers", "norm"),
    "mistral": Architecture("model", "layers", "norm"),
    "qwen2": Architecture("model", "layers", "norm"),
    "qwen3": Architecture("model", "layers", "norm"),
}


def architecture_of(model: nn.Module) -> Architecture:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    arch = ARCHITECTURES.get(model_type)  # type: ignore[arg-type]
    if arch is None:
        raise ConfigError(
            "backend",
            f"the 'heads' backend does not support model_type {model_type!r} (supported: "
            f"{', '.join(sorted(ARCHITECTURES))}); use backend 'lora' or 'independent' for this model",
        )
    layer_types = getattr(model.config, "layer_types", None)
    if layer_types and len(set(layer_types)) > 1:
        raise ConfigError(
            "backend",
            f"the 'heads' backend needs every block to take the same attention mask, but this "
            f"{model_type} model mixes layer types {sorted(set(layer_types))}; use backend 'lora'",
        )
    return arch


class HeadsExperts(ExpertBackend):
    """Shared trunk + K expert copies of the top ``num_expert_layers`` blocks.

    Args:
        base_model: a transformers causal LM of a registered architecture.
        num_experts: K.
        num_expert_layers: M, top blocks copied per expert (1 <= M < number of blocks); default
            min(2, blocks - 1).
        expert_lm_head: give each expert its own (untied) copy of the LM head too.
        trunk_trainable: train the shared trunk as well (then a frozen copy of the base is the reference).
        init_noise: symmetry breaking: relative noise added to each expert's copied tensors (0 = off).
        seed: seeds the noise.
        base_identity: identity of the base weights.
        average_logps: mean instead of sum of token log-probs.
    """

    kind = "heads"

    def __init__(
        self,
        base_model: nn.Module,
        num_experts: int,
        *,
        num_expert_layers: int | None = None,
        expert_lm_head: bool = False,
        trunk_trainable: bool = False,
        init_noise: float = 0.01,
        seed: int = 0,
        base_identity: str = "",
        average_logps: bool = False,
    ):
        super().__init__(num_experts, average_logps)
        self.arch = architecture_of(base_model)
        decoder = getattr(base_model, self.arch.decoder)
        blocks = getattr(decoder, self.arch.blocks)
        depth = len(blocks)
        if num_expert_layers is None:
            num_expert_layers = max(1, min(2, depth - 1))
        if not 1 <= num_expert_layers < depth:
            raise ConfigError(
                "num_expert_layers",
                f"must be between 1 and {depth - 1} for this {depth}-block model, got {num_expert_layers}; "
                "for fully separate experts use backend 'independent'",
            )
        self.num_expert_layers, self.expert_lm_head = num_expert_layers, expert_lm_head
        self.trunk_trainable, self.init_noise, self.seed = trunk_trainable, init_noise, seed
        self.base_identity = base_identity
        self.split = depth - num_expert_layers

        base_model.requires_grad_(False)
        self.base = base_model
        norm = getattr(decoder, self.arch.norm)
        head = base_model.get_output_embeddings()
        self.expert_blocks = nn.ModuleList(
            nn.ModuleList(copy.deepcopy(b) for b in blocks[self.split :]) for _ in range(num_experts)
        )
        self.expert_norms = nn.ModuleList(copy.deepcopy(norm) for _ in range(num_experts))
        self.expert_heads = (
            nn.ModuleList(copy.deepcopy(head) for _ in range(num_experts)) if expert_lm_head else None
        )
        for k in range(num_experts):
            params = [p for m in self._expert_modules(k) for p in m.parameters()]
            for p in params:
                p.requires_grad_(True)
            add_relative_noise_(params, init_noise, expert_generator(seed, k))
        self.reference: nn.Module | None = None
        if trunk_trainable:
            self.reference = copy.deepcopy(base_model).requires_grad_(False).eval()
            for p in self._trunk_parameters():
                p.requires_grad_(True)
        # The trunk is a shallow copy of the decoder that stops at the split and skips the final norm.
        # It is kept out of the module tree (its parameters are the base's own; registering it would
        # duplicate them in state_dict()).
        trunk = copy.copy(decoder)
        trunk._modules = dict(decoder._modules)
        setattr(trunk, self.arch.blocks, nn.ModuleList(blocks[: self.split]))
        setattr(trunk, self.arch.norm, nn.Identity())
        object.__setattr__(self, "_trunk", trunk)

    # --- structure -----------------------------------------------------------------------------
    def _expert_modules(self, k: int) -> list[nn.Module]:
        modules: list[nn.Module] = [self.expert_blocks[k], self.expert_norms[k]]
        if self.expert_heads is not None:
            modules.append(self.expert_heads[k])
        return modules

    def _trunk_parameters(self) -> Iterator[nn.Parameter]:
        decoder = getattr(self.base, self.arch.decoder)
        top = {id(p) for b in getattr(decoder, self.arch.blocks)[self.split :] for p in b.parameters()}
        top |= {id(p) for p in getattr(decoder, self.arch.norm).parameters()}
        return (p for p in decoder.parameters() if id(p) not in top)

    def frozen_modules(self) -> list[nn.Module]:
        # A frozen trunk (and the original top = the reference) runs without dropout: its output is
        # shared with the reference, which must be deterministic.
        return [self.reference] if self.reference is not None else [self.base]

    def expert_parameters(self, k: int) -> Iterator[nn.Parameter]:
        return (p for m in self._expert_modules(k) for p in m.parameters())

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return self._trunk_parameters() if self.trunk_trainable else iter(())

    # --- scoring -------------------------------------------------------------------------------
    def _run_trunk(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, tuple, dict]:
        """Trunk hidden states [N, T, H] and the positional/keyword arguments its blocks received."""
        captured: dict[str, Any] = {}

        def capture(module: nn.Module, args: tuple, kwargs: dict) -> None:
            captured["args"], captured["kwargs"] = args[1:], dict(kwargs)

        last_block = getattr(self._trunk, self.arch.blocks)[-1]
        handle = last_block.register_forward_pre_hook(capture, with_kwargs=True)
        try:
            with nullcontext() if self.trunk_trainable and torch.is_grad_enabled() else torch.no_grad():
                hidden = self._trunk(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    position_ids=position_ids_from_attention_mask(attention_mask),
                    use_cache=False,
                )[0]
        finally:
            handle.remove()
        return hidden, captured["args"], captured["kwargs"]

    def _top(
        self, hidden: torch.Tensor, args: tuple, kwargs: dict, blocks: nn.ModuleList, norm: nn.Module
    ) -> torch.Tensor:
        for block in blocks:
            out = block(hidden, *args, **kwargs)
            hidden = out[0] if isinstance(out, tuple) else out
        return norm(hidden)

    def _expert_logps(self, hidden, args, kwargs, input_ids, completion_mask) -> torch.Tensor:
        columns = []
        shared_head = self.base.get_output_embeddings()
        for k in range(self.num_experts):
            h = self._top(hidden, args, kwargs, self.expert_blocks[k], self.expert_norms[k])
            head = self.expert_heads[k] if self.expert_heads is not None else shared_head
            columns.append(
                completion_logps_from_hidden(h, head, input_ids, completion_mask, average=self.average_logps)
            )
        return torch.stack(columns, dim=-1)

    @torch.no_grad()
    def _reference_from_trunk(self, hidden, args, kwargs, input_ids, completion_mask) -> torch.Tensor:
        decoder = getattr(self.base, self.arch.decoder)
        h = self._top(
            hidden,
            args,
            kwargs,
            getattr(decoder, self.arch.blocks)[self.split :],
            getattr(decoder, self.arch.norm),
        )
        head = self.base.get_output_embeddings()
        return completion_logps_from_hidden(h, head, input_ids, completion_mask, average=self.average_logps)[
            :, None
        ]

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor
    ) -> torch.Tensor:
        """[N, K]: the trunk once, then each expert's top blocks on its output."""
        hidden, args, kwargs = self._run_trunk(input_ids, attention_mask)
        return self._expert_logps(hidden, args, kwargs, input_ids, completion_mask)

    def forward_with_reference(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """([N, K] policy, [N, 1] reference) sharing one trunk pass (when the trunk is frozen)."""
        if self.trunk_trainable:
            return self.forward(input_ids, attention_mask, completion_mask), self.reference_logps(
                input_ids, attention_mask, completion_mask
            )
        hidden, args, kwargs = self._run_trunk(input_ids, attention_mask)
        ref = self._reference_from_trunk(hidden, args, kwargs, input_ids, completion_mask)
        return self._expert_logps(hidden, args, kwargs, input_ids, completion_mask), ref

    @torch.no_grad()
    def reference_logps(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor
    ) -> torch.Tensor:
        if self.reference is not None:
            from mixdpo.logprobs import sequence_logps

            return sequence_logps(
                self.reference, input_ids, attention_mask, completion_mask, average=self.average_logps
            )[:, None]
        hidden, args, kwargs = self._run_trunk(input_ids, attention_mask)
        return self._reference_from_trunk(hidden, args, kwargs, input_ids, completion_mask)

    def feature_model(self) -> nn.Module:
        return self.reference if self.reference is not None else self.base

    def reference_identity(self) -> str:
        return self.base_identity

    # --- generation ----------------------------------------------------------------------------
    @contextmanager
    def use_expert(self, k: int | None) -> Iterator[nn.Module]:
        """Yield the base model with expert k's top blocks, norm (and head) swapped in; k=None: reference."""
        if k is None:
            yield self.feature_model()
            return
        if not 0 <= k < self.num_experts:
            raise ValueError(f"expert index must be in [0, {self.num_experts - 1}], got {k}")
        decoder = getattr(self.base, self.arch.decoder)
        blocks, norm = getattr(decoder, self.arch.blocks), getattr(decoder, self.arch.norm)
        head = self.base.get_output_embeddings()
        setattr(decoder, self.arch.blocks, nn.ModuleList([*blocks[: self.split], *self.expert_blocks[k]]))
        setattr(decoder, self.arch.norm, self.expert_norms[k])
        if self.expert_heads is not None:
            self.base.set_output_embeddings(self.expert_heads[k])
        try:
            yield self.base
        finally:
            setattr(decoder, self.arch.blocks, blocks)
            setattr(decoder, self.arch.norm, norm)
            if self.expert_heads is not None:
                self.base.set_output_embeddings(head)

    # --- persistence ---------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "num_experts": self.num_experts,
            "num_expert_layers": self.num_expert_layers,
            "expert_lm_head": self.expert_lm_head,
            "trunk_trainable": self.trunk_trainable,
            "init_noise": self.init_noise,
            "seed": self.seed,
            "average_logps": self.average_logps,
            "base_identity": self.base_identity,
        }

    def _trainable_state(self) -> dict[str, torch.Tensor]:
        state = {f"expert_blocks.{n}": t for n, t in self.expert_blocks.state_dict().items()}
        state |= {f"expert_norms.{n}": t for n, t in self.expert_norms.state_dict().items()}
        if self.expert_heads is not None:
            state |= {f"expert_heads.{n}": t for n, t in self.expert_heads.state_dict().items()}
        if self.trunk_trainable:
            names = {id(p): n for n, p in self.base.named_parameters()}
            state |= {f"trunk.{names[id(p)]}": p.detach() for p in self._trunk_parameters()}
        return {n: t.contiguous() for n, t in state.items()}

    def save(self, directory: Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """``heads.safetensors``: the expert tops (and the trunk, if it was trained).

        ``state_dict`` is not needed: this backend is refused under parameter sharding (FSDP, ZeRO-3), so
        its live parameters are always whole."""
        Path(directory).mkdir(parents=True, exist_ok=True)
        save_file(self._trainable_state(), str(Path(directory) / "heads.safetensors"))

    @classmethod
    def load(cls, directory: Path, base_model: nn.Module, config: dict[str, Any]) -> HeadsExperts:
        """Rebuild on a freshly loaded base model and load the saved tops (and trunk)."""
        options = {k: v for k, v in config.items() if k not in ("kind", "num_experts")}
        backend = cls(base_model, config["num_experts"], **{**options, "init_noise": 0.0})
        state = load_file(str(Path(directory) / "heads.safetensors"))
        for prefix, module in (
            ("expert_blocks.", backend.expert_blocks),
            ("expert_norms.", backend.expert_norms),
            ("expert_heads.", backend.expert_heads),
        ):
            if module is not None:
                module.load_state_dict(
                    {n[len(prefix) :]: t for n, t in state.items() if n.startswith(prefix)}
                )
        trunk = {n[len("trunk.") :]: t for n, t in state.items() if n.startswith("trunk.")}
        if trunk:
            params = dict(backend.base.named_parameters())
            with torch.no_grad():
                for name, tensor in trunk.items():
                    params[name].copy_(tensor)
        return backend
