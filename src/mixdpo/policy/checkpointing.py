"""Activation (gradient) checkpointing for every transformer block of a mixture policy.

``PreTrainedModel.activation_checkpointing_enable`` only reaches the blocks of the model it is called
on; the heads backend's per-expert block copies and the independent backend's K models would be missed.
Here every ``GradientCheckpointingLayer`` under the policy is switched on with non-reentrant
``torch.utils.checkpoint`` (which, unlike the reentrant form, needs no input that requires grad, so the
frozen-base backends need no ``enable_input_require_grads`` hook). Blocks run without autograd (the heads
trunk, references) are never checkpointed: transformers checks ``torch.is_grad_enabled()`` first.
"""

from __future__ import annotations

import functools
from typing import Any

from torch import nn
from torch.utils.checkpoint import checkpoint


def _checkpointable_blocks(module: nn.Module) -> list[nn.Module]:
    from transformers.modeling_layers import GradientCheckpointingLayer

    return [m for m in module.modules() if isinstance(m, GradientCheckpointingLayer)]


def enable_block_checkpointing(
    module: nn.Module,
    checkpoint_kwargs: dict[str, Any] | None = None,
    every_n_layers: int = 1,
    offload: bool = False,
) -> int:
    """Checkpoint every ``every_n_layers``-th transformer block under ``module``; returns how many.

    Args:
        checkpoint_kwargs: passed to ``torch.utils.checkpoint.checkpoint`` (default
            ``{"use_reentrant": False}``).
        every_n_layers: 1 checkpoints all blocks; n > 1 every n-th (trading memory back for speed).
        offload: keep the saved block inputs in (pinned) host memory.
    """
    if every_n_layers < 1:
        raise ValueError(f"every_n_layers must be >= 1, got {every_n_layers}")
    kwargs = {"use_reentrant": False, **(checkpoint_kwargs or {})}
    run = functools.partial(checkpoint, **kwargs)
    if offload:
        import torch

        def run(function, *args, **kw):
            with torch.autograd.graph.save_on_cpu(pin_memory=torch.cuda.is_available()):
                return checkpoint(function, *args, **{**kwargs, **kw})

    blocks = _checkpointable_blocks(module)
    chosen = blocks[::every_n_layers]
    for block in blocks:
        block.gradient_checkpointing = False
    for block in chosen:
        block.gradient_checkpointing = True
        block._gradient_checkpointing_func = run
    return len(chosen)


def disable_block_checkpointing(module: nn.Module) -> None:
    """Store activations again in every block under ``module``."""
    for block in _checkpointable_blocks(module):
        block.gradient_checkpointing = False
