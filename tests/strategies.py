"""Hypothesis strategies shared by the objective tests: batches of [B, K] log-prob tensors."""

from __future__ import annotations

import torch
from hypothesis import strategies as st


@st.composite
def bk_tensors(
    draw, n: int = 4, min_b: int = 1, max_b: int = 6, min_k: int = 1, max_k: int = 5, scale: float = 50.0
):
    """``n`` float64 tensors of one shared random shape [B, K] with entries in [-scale, scale]."""
    b = draw(st.integers(min_b, max_b))
    k = draw(st.integers(min_k, max_k))
    values = st.floats(-scale, scale, allow_nan=False, allow_infinity=False, width=64)
    out = []
    for _ in range(n):
        flat = draw(st.lists(values, min_size=b * k, max_size=b * k))
        out.append(torch.tensor(flat, dtype=torch.float64).reshape(b, k))
    return out
