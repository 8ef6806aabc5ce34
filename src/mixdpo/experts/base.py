"""The interface every expert backend implements, and prompt-feature pooling.

A backend holds the K expert policies pi_k and their reference policies pi_ref_k, and turns a batch
(``mixdpo.batch``) into the [N, K] sequence log-probs the objective takes. All K experts run inside one
``forward`` of one ``nn.Module``, so DDP/FSDP/DeepSpeed see one forward and one backward per step.

Backends:

- ``lora``: K PEFT LoRA adapters on one shared frozen base (:mod:`mixdpo.experts.lora`);
- ``heads``: a shared trunk computed once, K copies of the top blocks (:mod:`mixdpo.experts.heads`);
- ``independent``: K full models, optionally K reference models (:mod:`mixdpo.experts.independent`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mixdpo.logprobs import position_ids_from_attention_mask


def strip_prefix(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of ``state_dict`` under ``prefix``, with the prefix removed (a submodule's own state)."""
    return {name[len(prefix) :]: t for name, t in state_dict.items() if name.startswith(prefix)}


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of hidden states over real tokens: phi(x) = sum_t m_t h_t / sum_t m_t.

    Args:
        hidden: [B, T, H]; attention_mask: [B, T] (any padding side).

    Returns:
        [B, H] float32.
    """
    mask = attention_mask.to(torch.float32).unsqueeze(-1)
    return (hidden.float() * mask).sum(1) / mask.sum(1).clamp(min=1.0)


# what the prompt gate reads, mean-pooled over the prompt's tokens
GATE_FEATURES = ("last", "embeddings")


@torch.no_grad()
def pooled_prompt_features(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, features: str = "last"
) -> torch.Tensor:
    """Prompt features phi(x) = sum_t m_t h_t / sum_t m_t of a causal LM over the prompt's tokens.

    Args:
        model: a transformers causal LM (or anything with ``get_decoder()`` / ``get_input_embeddings()``).
        input_ids, attention_mask: [B, Tp] prompt tokens.
        features: ``last``: h_t is the decoder's final hidden state (after the final norm), one forward
            of the decoder; ``embeddings``: h_t is the input embedding of token t (a bag of words, no
            forward: what tells a topic's prompts apart is in which words they use, while the last
            layer of a small or random model mixes that with everything else).

    Returns:
        [B, H] float32 features, no gradient.
    """
    if features == "embeddings":
        return mean_pool(model.get_input_embeddings()(input_ids), attention_mask)
    if features != "last":
        raise ValueError(f"features must be one of {GATE_FEATURES}, got {features!r}")
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model
    hidden = decoder(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids_from_attention_mask(attention_mask),
        use_cache=False,
    )[0]
    return mean_pool(hidden, attention_mask)


class ExpertBackend(nn.Module):
    """K expert policies (and their references) behind one interface.

    Attributes:
        kind: ``lora``, ``heads`` or ``independent``.
        num_experts: K.
        average_logps: score sequences by mean instead of sum of token log-probs (IPO-style).
        gate_features: what :meth:`prompt_features` pools (``last`` or ``embeddings``); set from the
            policy's config when the policy is built.
    """

    kind: str = "base"
    gate_features: str = "last"

    def __init__(self, num_experts: int, average_logps: bool = False):
        super().__init__()
        if num_experts < 1:
            raise ValueError(f"num_experts must be >= 1, got {num_experts}")
        self.num_experts = num_experts
        self.average_logps = average_logps

    def set_experts_trainable(self, trainable: bool) -> None:
        """Freeze (False) or unfreeze (True) every expert's and the shared trainable parameters, e.g. to
        refit only the gate (personalisation)."""
        for k in range(self.num_experts):
            for p in self.expert_parameters(k):
                p.requires_grad_(trainable)
        for p in self.shared_parameters():
            p.requires_grad_(trainable)

    @torch.no_grad()
    def reseed_expert(self, dst: int, src: int, noise: float, seed: int) -> None:
        """Make expert ``dst`` a perturbed copy of expert ``src`` (collapse recovery: split a busy expert).

        p_dst <- p_src + noise * rms(p_src) * eps, with seeded eps; the two differ from then on, so EM can
        let them specialise on different parts of the data ``src`` explained alone.
        """
        from mixdpo.experts.symmetry import add_relative_noise_, expert_generator

        dst_params, src_params = list(self.expert_parameters(dst)), list(self.expert_parameters(src))
        if len(dst_params) != len(src_params):
            raise ValueError(f"experts {dst} and {src} have different parameter lists")
        for p_dst, p_src in zip(dst_params, src_params, strict=True):
            p_dst.copy_(p_src)
        add_relative_noise_(dst_params, noise, expert_generator(seed, dst))

    def frozen_modules(self) -> list[nn.Module]:
        """Modules that must stay in eval mode (separate reference models); see :meth:`train`."""
        return []

    def train(self, mode: bool = True) -> ExpertBackend:
        """Like ``nn.Module.train``, but reference models stay in eval mode: reference log-probs must be
        deterministic (no dropout), both when cached once and when computed at every step."""
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()
        return self

    # --- scoring -------------------------------------------------------------------------------
    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor
    ) -> torch.Tensor:
        """[N, K] log pi_k(y_n | x_n) for every sequence n and expert k (differentiable)."""
        raise NotImplementedError

    def expert_logps(
        self, k: int, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor
    ) -> torch.Tensor:
        """[N] log pi_k(y_n | x_n) of expert k alone (differentiable): column k of :meth:`forward`, computed
        without running the other experts. Used by ``sequential_experts`` (:mod:`mixdpo.policy.sequential`)
        to hold one expert's activations at a time; backends that cannot run one expert alone don't
        define it."""
        raise NotImplementedError(f"the {type(self).__name__} backend cannot run one expert alone")

    def reference_logps(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor
    ) -> torch.Tensor:
        """[N, R] log pi_ref(y_n | x_n), no gradient; R = 1 (shared reference) or K (one per expert)."""
        raise NotImplementedError

    @property
    def num_reference_columns(self) -> int:
        """R: 1 when all experts share one reference, K with per-expert references."""
        return 1

    def prompt_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[B, H] gate features of prompts from the frozen reference: mean-pooled final hidden state or
        token embeddings (``gate_features``, see :func:`pooled_prompt_features`)."""
        return pooled_prompt_features(self.feature_model(), input_ids, attention_mask, self.gate_features)

    @property
    def feature_dim(self) -> int:
        """H, the width of :meth:`prompt_features`."""
        return int(self.feature_model().config.hidden_size)

    def feature_model(self) -> nn.Module:
        """The frozen model whose hidden states are the prompt features (the reference)."""
        raise NotImplementedError

    def reference_identity(self) -> str:
        """A string that identifies the reference weights (part of the reference-cache key)."""
        raise NotImplementedError

    # --- generation ----------------------------------------------------------------------------
    def use_expert(self, k: int | None) -> AbstractContextManager[nn.Module]:
        """Context manager yielding a causal LM that *is* expert k (k=None: the reference) for ``generate``.

        Backends may reconfigure shared modules while the context is open; don't interleave contexts.
        """
        raise NotImplementedError

    # --- persistence ---------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """JSON-serialisable settings needed to rebuild the backend (without weights)."""
        raise NotImplementedError

    def save(self, directory: Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """Write the experts' trainable weights (and whatever the config cannot rebuild) to ``directory``.

        Args:
            directory: where to write.
            state_dict: this backend's full state (keys relative to the backend), e.g. gathered from FSDP
                or ZeRO-3 shards; None = the live parameters (whole unless sharded).
        """
        raise NotImplementedError

    def expert_parameters(self, k: int) -> Iterator[nn.Parameter]:
        """Trainable parameters that belong to expert k alone."""
        raise NotImplementedError

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """Trainable parameters shared by all experts (e.g. a trainable ``heads`` trunk); none by default."""
        return iter(())
