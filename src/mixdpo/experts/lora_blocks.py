"""All K LoRA experts in one batched matmul per layer, for expert-major batches.

In training the ``lora`` backend repeats the batch K times, expert-major: rows k N .. (k+1) N - 1 belong to
adapter k. PEFT's mixed-adapter path (``adapter_names``) handles any row order, at a price paid in every
adapted layer: for each adapter it gathers its rows (a copy of the layer input, which autograd keeps for
the backward) and scatters the result back. With contiguous equal blocks neither is needed: the input
reshapes (a view) to ``[K, N T, d_in]`` and

    delta_k = s_k * (x_k A_k^T) B_k^T          for all k at once: baddbmm(base, bmm(x, s A^T), B^T)

with ``A = stack(A_k)`` ``[K, r, d_in]``, ``B = stack(B_k)`` ``[K, d_out, r]``: two batched matmuls, no
copy of x, and autograd saves a view of x. Other row orders (per-row routing in ``generate``) keep PEFT's
path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from peft.tuners.lora import LoraLayer
from torch import nn


@dataclass(frozen=True)
class BlockRouting:
    """Adapters ``names[k]`` own rows k ``rows`` .. (k+1) ``rows`` - 1 of every adapted layer's input."""

    names: tuple[str, ...]
    rows: int


def supports_blocks(layer: LoraLayer, names: tuple[str, ...]) -> bool:
    """Whether :func:`blocked_lora_forward` computes exactly what PEFT would for ``layer``: plain linear
    adapters (no bias, no variant such as DoRA) present for every name, unmerged and enabled."""
    if layer.merged or layer.disable_adapters:
        return False
    for name in names:
        if name not in layer.lora_A or name in getattr(layer, "lora_variant", {}):
            return False
        a, b = layer.lora_A[name], layer.lora_B[name]
        if not isinstance(a, nn.Linear) or not isinstance(b, nn.Linear) or b.bias is not None:
            return False
    return True


def blocked_lora_forward(
    x: torch.Tensor, base_out: torch.Tensor, layer: LoraLayer, routing: BlockRouting
) -> torch.Tensor:
    """``base_out + delta`` for an expert-major ``x`` ``[K N, ..., d_in]`` and the base layer's output
    ``[K N, ..., d_out]``. The scaling s_k is folded into A_k (``[K, d_in, r]``, tiny) and the addition into
    the second matmul (``baddbmm``): no extra pass over a ``d_out``-wide tensor."""
    k = len(routing.names)
    a = torch.stack([layer.lora_A[n].weight for n in routing.names])  # [K, r, d_in]
    b = torch.stack([layer.lora_B[n].weight for n in routing.names])  # [K, d_out, r]
    scales = [float(layer.scaling[n]) for n in routing.names]
    # adapters share one LoraConfig, so one Python scale: no per-layer tensor (a host-to-device copy on GPU)
    scaling = (
        scales[0]
        if len(set(scales)) == 1
        else torch.tensor(scales, dtype=a.dtype, device=a.device)[:, None, None]
    )
    xs = x.to(a.dtype).reshape(k, -1, x.shape[-1])  # a view when x is contiguous
    dropouts = [layer.lora_dropout[n] for n in routing.names]
    if any(not isinstance(d, nn.Identity) and d.training and getattr(d, "p", 0) > 0 for d in dropouts):
        xs = torch.stack([d(xs[i]) for i, d in enumerate(dropouts)])
    h = torch.bmm(xs, a.transpose(1, 2) * scaling)  # [K, N T, r]
    if base_out.dtype == b.dtype:
        out = torch.baddbmm(base_out.reshape(k, -1, base_out.shape[-1]), h, b.transpose(1, 2))
        return out.reshape(base_out.shape)
    return base_out + torch.bmm(h, b.transpose(1, 2)).reshape(base_out.shape).to(base_out.dtype)


def install_block_forward(layer: LoraLayer, routing_of: Callable[[], Any]) -> None:
    """Make ``layer`` take the batched path whenever ``routing_of()`` is a :class:`BlockRouting` that fits
    its input; anything else goes to PEFT's own forward unchanged. Read at call time (also during an
    activation-checkpointing recompute), so the routing of the forward is the routing of its backward."""
    peft_forward = layer.forward

    def forward(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        routing = routing_of()
        if (
            isinstance(routing, BlockRouting)
            and x.shape[0] == len(routing.names) * routing.rows
            and "adapter_names" not in kwargs
            and supports_blocks(layer, routing.names)
        ):
            return blocked_lora_forward(x, layer.base_layer(x, *args, **kwargs), layer, routing)
        return peft_forward(x, *args, **kwargs)

    layer.forward = forward  # instance attribute: nn.Module.__call__ (and its hooks) still run
