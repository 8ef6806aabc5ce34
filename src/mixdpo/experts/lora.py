"""``lora`` backend: K PEFT LoRA adapters on one shared frozen base model.

One copy of the base weights is held whatever K is. All K experts are scored in a single forward pass:
the batch of N sequences is repeated K times (expert-major: rows k*N .. (k+1)*N - 1 belong to expert
k) and every LoRA layer applies adapter k to its rows through PEFT's mixed-adapter batch path
(``adapter_names``). The base matmuls therefore run once on K*N rows instead of K times on N rows.

The reference is the base with adapters disabled, unless a separate reference model is given.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from torch import nn

from mixdpo.errors import ConfigError
from mixdpo.experts.base import ExpertBackend, pooled_prompt_features, strip_prefix
from mixdpo.experts.lora_blocks import BlockRouting, install_block_forward
from mixdpo.experts.symmetry import add_absolute_noise_, expert_generator
from mixdpo.logprobs import completion_logps_from_hidden, position_ids_from_attention_mask, sequence_logps


def adapter_name(k: int) -> str:
    return f"expert_{k}"


def linear_module_names(model: nn.Module) -> list[str]:
    """Leaf names of the linear (and GPT-2 Conv1D) layers except the output head ("all-linear")."""
    head = model.get_output_embeddings()
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if module is not head and type(module).__name__ in ("Linear", "Conv1D")
    }
    return sorted(names)


class LoraExperts(ExpertBackend):
    """K LoRA adapters ``expert_0 .. expert_{K-1}`` on one frozen base.

    Args:
        base_model: a transformers causal LM; it is frozen and wrapped in place by PEFT.
        num_experts: K.
        r, alpha, dropout, target_modules: the LoRA settings shared by all adapters (PEFT's ``LoraConfig``;
            ``target_modules="all-linear"`` adapts every linear/Conv1D layer except the output head).
        top_layers: adapt only the top N transformer blocks (PEFT's ``layers_to_transform``). Backward then
            stops at the lowest adapted block, which cuts the cost of a step roughly in proportion.
        init_noise: symmetry breaking: std of the N(0, init_noise^2) entries given to each adapter's B
            matrices (0 = off; see :mod:`mixdpo.experts.symmetry`).
        seed: seeds the symmetry-breaking noise.
        reference_model: a separate frozen reference; default: the base with adapters disabled.
        base_identity, reference_identity: identities of the weights (for caches and saving).
        average_logps: mean instead of sum of token log-probs.
    """

    kind = "lora"

    def __init__(
        self,
        base_model: nn.Module,
        num_experts: int,
        *,
        r: int = 8,
        alpha: int = 16,
        dropout: float = 0.0,
        target_modules: str | list[str] = "all-linear",
        top_layers: int | None = None,
        init_noise: float = 0.01,
        seed: int = 0,
        reference_model: nn.Module | None = None,
        base_identity: str = "",
        reference_identity: str | None = None,
        average_logps: bool = False,
        _peft_model: PeftModel | None = None,
    ):
        super().__init__(num_experts, average_logps)
        self.r, self.alpha, self.dropout, self.target_modules = r, alpha, dropout, target_modules
        self.top_layers = top_layers
        self.init_noise, self.seed = init_noise, seed
        self.base_identity = base_identity
        self._reference_identity = reference_identity
        if _peft_model is None:
            base_model.requires_grad_(False)
            # GPT-2 stores its linear layers transposed (Conv1D); telling PEFT up front avoids its warning.
            transposed = getattr(getattr(base_model, "config", None), "model_type", None) == "gpt2"
            layers = None
            if top_layers is not None:
                depth = base_model.config.num_hidden_layers
                if not 1 <= top_layers <= depth:
                    raise ConfigError("lora_top_layers", f"must be between 1 and {depth}, got {top_layers}")
                layers = list(range(depth - top_layers, depth))
                if isinstance(target_modules, str):  # PEFT wants explicit names with layers_to_transform
                    target_modules = linear_module_names(base_model)
            lora = LoraConfig(
                r=r,
                lora_alpha=alpha,
                lora_dropout=dropout,
                target_modules=target_modules,
                fan_in_fan_out=transposed,
                layers_to_transform=layers,
            )
            _peft_model = get_peft_model(base_model, lora, adapter_name=adapter_name(0))
            for k in range(1, num_experts):
                _peft_model.add_adapter(adapter_name(k), lora)
            for k in range(num_experts):
                params = [p for n, p in _peft_model.named_parameters() if f"lora_B.{adapter_name(k)}." in n]
                add_absolute_noise_(params, init_noise, expert_generator(seed, k))
        self.model = _peft_model
        self._make_all_adapters_trainable()
        if reference_model is not None:
            reference_model.requires_grad_(False).eval()
        self.reference_model = reference_model
        self._lora_layers = [m for m in self.model.modules() if isinstance(m, LoraLayer)]
        if any(getattr(m, "use_dora", {}).get(adapter_name(0), False) for m in self._lora_layers):
            raise ConfigError("lora", "DoRA adapters cannot be batched per expert; use plain LoRA")
        # Adapter routing of the current forward. The hooks stay registered (rather than being added and
        # removed around each forward) so that gradient checkpointing, which re-runs layers during
        # backward, sees the same routing as the original forward.
        self._routing: list[str] | str | BlockRouting | None = None
        for layer in self._lora_layers:
            layer.register_forward_pre_hook(self._inject_routing, with_kwargs=True)
            install_block_forward(layer, self._current_routing)
        # Training batches are expert-major blocks: all K adapters in one batched matmul per layer
        # (see lora_blocks); False routes them through PEFT's per-row path instead (same values).
        self.block_routing = True
        # With adapters on the top blocks only, the trunk below them is shared by all experts and runs once
        # (see _forward_shared_trunk); the blocks are found for the architectures the heads backend knows.
        self._expand_rows: int | None = None
        self._shared_blocks = self._adapted_blocks() if top_layers is not None and num_experts > 1 else None
        for block in self._shared_blocks or []:
            block.register_forward_pre_hook(self._expand_to_experts, with_kwargs=True)

    def _adapted_blocks(self) -> list[nn.Module] | None:
        from mixdpo.experts.heads import ARCHITECTURES

        base = self.model.get_base_model()
        arch = ARCHITECTURES.get(getattr(base.config, "model_type", None))
        if arch is None or self.top_layers is None:
            return None
        blocks = getattr(getattr(base, arch.decoder), arch.blocks)
        return list(blocks[len(blocks) - self.top_layers :])

    def _make_all_adapters_trainable(self) -> None:
        # PEFT marks only the active adapter trainable (and re-marks it whenever adapters are re-enabled,
        # e.g. on leaving ``disable_adapter()``); every expert trains here, unless they were frozen.
        trainable = not getattr(self, "_experts_frozen", False)
        for name, p in self.model.named_parameters():
            p.requires_grad_(trainable and "lora_" in name)

    def set_experts_trainable(self, trainable: bool) -> None:
        self._experts_frozen = not trainable
        self._make_all_adapters_trainable()

    def _current_routing(self) -> list[str] | str | BlockRouting | None:
        return self._routing

    def _inject_routing(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        routing = self._routing
        if routing is None or isinstance(routing, BlockRouting) or not args:
            return args, kwargs
        rows = args[0].shape[0]
        if isinstance(routing, str):  # one expert for every row, whatever the batch size
            kwargs["adapter_names"] = [routing] * rows
        elif rows == len(routing):
            kwargs["adapter_names"] = routing
        return args, kwargs

    @contextmanager
    def _routed(self, routing: list[str] | str | BlockRouting | None) -> Iterator[None]:
        previous, self._routing = self._routing, routing
        try:
            yield
        finally:
            self._routing = previous

    # --- scoring -------------------------------------------------------------------------------
    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor
    ) -> torch.Tensor:
        """[N, K] log pi_k(y|x): one forward over the batch repeated K times, adapter k on block k."""
        k, n = self.num_experts, input_ids.shape[0]
        if k == 1:
            with self._routed(None):
                return sequence_logps(
                    self.model, input_ids, attention_mask, completion_mask, average=self.average_logps
                )[:, None]
        if self.block_routing:
            self._routing = BlockRouting(tuple(adapter_name(e) for e in range(k)), n)
        else:
            self._routing = [adapter_name(e) for e in range(k) for _ in range(n)]
        if self._shared_blocks is not None:
            return self._forward_shared_trunk(input_ids, attention_mask, completion_mask)
        logps = sequence_logps(
            self.model,
            input_ids.repeat(k, 1),
            attention_mask.repeat(k, 1),
            completion_mask.repeat(k, 1),
            average=self.average_logps,
        )
        return logps.view(k, n).T

    def expert_logps(
        self, k: int, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor
    ) -> torch.Tensor:
        """[N] log pi_k(y|x) with adapter k on every row (column k of :meth:`forward`). The routing stays in
        place after the call, like :meth:`forward`'s: a checkpointed backward recomputes with adapter k."""
        if self.num_experts == 1:
            return self.forward(input_ids, attention_mask, completion_mask)[:, 0]
        self._routing = BlockRouting((adapter_name(k),), input_ids.shape[0])
        return sequence_logps(
            self.model, input_ids, attention_mask, completion_mask, average=self.average_logps
        )

    def _forward_shared_trunk(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor
    ) -> torch.Tensor:
        """With adapters on the top blocks only, the blocks below are the same for every expert: run them
        once on N rows and repeat the hidden states K times at the first adapted block."""
        k, n = self.num_experts, input_ids.shape[0]
        self._expand_rows = n
        try:
            hidden = self.model.get_base_model().get_decoder()(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids_from_attention_mask(attention_mask),
                use_cache=False,
            )[0]
        finally:
            self._expand_rows = None
        head = self.model.get_base_model().get_output_embeddings()
        logps = completion_logps_from_hidden(
            hidden, head, input_ids.repeat(k, 1), completion_mask.repeat(k, 1), average=self.average_logps
        )
        return logps.view(k, n).T

    def _expand_to_experts(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        """Pre-hook of each adapted block: repeat every tensor whose batch dimension is N (the hidden
        states at the first adapted block; masks, position ids and rotary embeddings at all of them)."""
        n = self._expand_rows
        if n is None:
            return None
        k = self.num_experts

        def expand(value):
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == n:
                return value.repeat(k, *([1] * (value.dim() - 1)))
            if isinstance(value, tuple):
                return tuple(expand(v) for v in value)
            return value

        return tuple(expand(a) for a in args), {key: expand(v) for key, v in kwargs.items()}

    @torch.no_grad()
    def reference_logps(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor
    ) -> torch.Tensor:
        """[N, 1] log pi_ref(y|x): the base with adapters disabled (or the given reference model)."""
        with self._reference() as ref:
            logps = sequence_logps(
                ref, input_ids, attention_mask, completion_mask, average=self.average_logps
            )
        return logps[:, None]

    def frozen_modules(self) -> list[nn.Module]:
        return [self.reference_model] if self.reference_model is not None else []

    @contextmanager
    def _reference(self) -> Iterator[nn.Module]:
        if self.reference_model is not None:
            yield self.reference_model
            return
        # The base is shared with the experts and follows their train/eval mode; the reference must be
        # deterministic (no dropout), so it runs in eval mode and the mode is restored afterwards.
        was_training = self.model.training
        self.model.eval()
        try:
            with self._routed(None), self.model.disable_adapter():
                yield self.model
        finally:
            self.model.train(was_training)
            self._make_all_adapters_trainable()

    @torch.no_grad()
    def prompt_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        with self._reference() as ref:
            base = ref.get_base_model() if isinstance(ref, PeftModel) else ref
            return pooled_prompt_features(base, input_ids, attention_mask, self.gate_features)

    def feature_model(self) -> nn.Module:
        return self.reference_model if self.reference_model is not None else self.model.get_base_model()

    def reference_identity(self) -> str:
        return self._reference_identity or self.base_identity

    # --- generation ----------------------------------------------------------------------------
    @contextmanager
    def use_expert(self, k: int | None) -> Iterator[nn.Module]:
        """Yield the PEFT model with every row routed to adapter k (k=None: the reference).

        Routing goes through the per-row adapter path rather than PEFT's ``set_adapter``, which would flip
        ``requires_grad`` of the other adapters (and drop their gradients if done between a forward and
        its backward).
        """
        if k is None:
            with self._reference() as ref:
                yield ref
            return
        if not 0 <= k < self.num_experts:
            raise ValueError(f"expert index must be in [0, {self.num_experts - 1}], got {k}")
        with self._routed(adapter_name(k)):
            yield self.model

    @contextmanager
    def routed_rows(self, experts: list[int]) -> Iterator[nn.Module]:
        """Yield the PEFT model with row i of the next batch routed to adapter ``experts[i]`` (for
        ``generate`` with one sampled expert per sequence in a single call)."""
        with self._routed([adapter_name(k) for k in experts]):
            yield self.model

    # --- persistence ---------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "num_experts": self.num_experts,
            "r": self.r,
            "alpha": self.alpha,
            "dropout": self.dropout,
            "target_modules": self.target_modules,
            "top_layers": self.top_layers,
            "init_noise": self.init_noise,
            "seed": self.seed,
            "average_logps": self.average_logps,
            "base_identity": self.base_identity,
            "reference_identity": self._reference_identity,
        }

    def save(self, directory: Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """PEFT's own format: one sub-directory per adapter (``expert_k/adapter_model.safetensors``)."""
        if state_dict is not None:
            # PEFT picks the adapters' entries out of its model's state dict (keys relative to self.model)
            state_dict = strip_prefix(state_dict, "model.")
        self.model.save_pretrained(str(directory), state_dict=state_dict)

    @classmethod
    def load(
        cls,
        directory: Path,
        base_model: nn.Module,
        config: dict[str, Any],
        reference_model: nn.Module | None = None,
    ) -> LoraExperts:
        """Rebuild from :meth:`save` output on a freshly loaded base model (no symmetry noise is added)."""
        directory = Path(directory)
        base_model.requires_grad_(False)
        model = PeftModel.from_pretrained(
            base_model, str(directory / adapter_name(0)), adapter_name=adapter_name(0), is_trainable=True
        )
        for k in range(1, config["num_experts"]):
            model.load_adapter(
                str(directory / adapter_name(k)), adapter_name=adapter_name(k), is_trainable=True
            )
        options = {
            key: config[key] for key in ("r", "alpha", "dropout", "target_modules", "init_noise", "seed")
        }
        return cls(
            base_model,
            config["num_experts"],
            **options,
            reference_model=reference_model,
            base_identity=config.get("base_identity", ""),
            reference_identity=config.get("reference_identity"),
            average_logps=config.get("average_logps", False),
            _peft_model=model,
        )

    def expert_parameters(self, k: int) -> Iterator[nn.Parameter]:
        marker = f".{adapter_name(k)}."
        return (p for n, p in self.model.named_parameters() if marker in n and "lora_" in n)
