"""Token log-probs through the output embedding without keeping the ``[M, V]`` logits for backward.

For M scored rows h_m (``[M, H]``), an output embedding W (``[V, H]``, optional bias b) and targets y_m:

    z_m = W h_m + b,    l_m = logsumexp(z_m),    log p(y_m | h_m) = z_m[y_m] - l_m

Plain autograd keeps every chunk of z (M x V floats: for K = 8 experts x 8 rows x 128 completion tokens
and a 49k vocabulary, 1.6 GB) until backward. This function keeps h, W, y and l only (M x (H + 2)) and
recomputes z chunk by chunk in backward, where with g_m the incoming gradient and p_m = softmax(z_m):

    dlogp/dz_m = onehot(y_m) - p_m
    dh_m = g_m (onehot(y_m) - p_m) W,     dW = sum_m g_m (onehot(y_m) - p_m)^T h_m,     db = sum_m ...

The cost is one more projection of the M rows (the forward's), the saving all of the logits' memory.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _accumulation_dtype(weight: torch.Tensor) -> torch.dtype:
    # float32 for float32/bf16/fp16 weights (as the unfused path); float64 stays float64 (exact tests)
    return torch.float64 if weight.dtype == torch.float64 else torch.float32


class _ChunkedHeadLogProb(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, chunk_elements: int):  # type: ignore[override]
        step = max(1, chunk_elements // max(weight.shape[0], 1))
        acc = _accumulation_dtype(weight)
        out = torch.empty(hidden.shape[0], dtype=acc, device=hidden.device)
        lse = torch.empty_like(out)
        for start in range(0, hidden.shape[0], step):
            logits = F.linear(hidden[start : start + step], weight, bias).to(acc)
            lse[start : start + step] = torch.logsumexp(logits, dim=-1)
            picked = logits.gather(-1, targets[start : start + step, None]).squeeze(-1)
            out[start : start + step] = picked - lse[start : start + step]
        ctx.save_for_backward(hidden, weight, bias, targets, lse)
        ctx.step = step
        return out

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        hidden, weight, bias, targets, lse = ctx.saved_tensors
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        acc = _accumulation_dtype(weight)
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=acc, device=weight.device) if need_w else None
        grad_b = torch.zeros(bias.shape, dtype=acc, device=bias.device) if need_b else None
        for start in range(0, hidden.shape[0], ctx.step):
            h = hidden[start : start + ctx.step]
            g = grad_out[start : start + ctx.step].to(acc)
            logits = F.linear(h, weight, bias).to(acc)
            # g (onehot - p), built in place on the recomputed logits
            dz = torch.exp_(logits.sub_(lse[start : start + ctx.step, None])).mul_(-g[:, None])
            dz.scatter_add_(-1, targets[start : start + ctx.step, None], g[:, None])
            if need_h:
                grad_h[start : start + ctx.step] = (dz.to(weight.dtype) @ weight).to(hidden.dtype)
            if need_w:
                grad_w.add_(dz.T @ h.to(acc))
            if need_b:
                grad_b.add_(dz.sum(0))
        return (
            grad_h,
            grad_w.to(weight.dtype) if need_w else None,
            grad_b.to(bias.dtype) if need_b else None,
            None,
            None,
        )


ENABLED = True
"""Module switch: False sends every head through the plain (logit-keeping) path. For A/B measurements
(``scripts/measure_backends.py --variants``); there is no reason to turn it off otherwise."""


def fusable_head(head: object) -> bool:
    """Whether ``head`` is a plain ``nn.Linear`` whose forward can be bypassed: no module hooks (they would
    not run) and not wrapped by an adapter (PEFT swaps the module type, so a LoRA head is not fused)."""
    return (
        ENABLED
        and type(head) is nn.Linear
        and not head._forward_hooks
        and not head._forward_pre_hooks
        and head.weight.dim() == 2
        and head.weight.numel() > 0
    )


def head_token_logps(
    hidden: torch.Tensor, head: nn.Linear, targets: torch.Tensor, chunk_elements: int = 1 << 26
) -> torch.Tensor:
    """``[M]`` float32 log p(targets | hidden) through ``head`` (``[M, H]`` rows, ``[M]`` int64 targets),
    scoring ``chunk_elements // V`` rows at a time and keeping no logits for backward."""
    return _ChunkedHeadLogProb.apply(hidden, head.weight, head.bias, targets, chunk_elements)
