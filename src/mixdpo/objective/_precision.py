"""Numerical precision policy shared by the objective functions.

Log-probabilities may arrive in bfloat16/float16 from mixed-precision forwards. Sums of them, squares
(IPO) and logsumexp over experts lose too much in 8-10 mantissa bits, and fp16 overflows at 65504, so
every objective function computes in float32 (float64 stays float64). This mirrors what TRL does when
it upcasts logits before the loss.
"""

from __future__ import annotations

import torch


def upcast(t: torch.Tensor) -> torch.Tensor:
    """Return ``t`` as float32 if it is a half-precision or integer tensor, else unchanged."""
    if t.dtype in (torch.float16, torch.bfloat16) or not t.is_floating_point():
        return t.float()
    return t
