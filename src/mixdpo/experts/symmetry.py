"""Symmetry breaking: experts created from one checkpoint must be able to specialise.

Experts that start identical have identical margins, so the exact E-step gives q = w, every expert
receives the same responsibility-weighted gradient, and they stay identical forever (DESIGN.md). Each
backend therefore perturbs its experts at creation, seeded so that runs are reproducible:

- ``lora``: LoRA's B matrices start at 0 (adapter = base); B_k gets i.i.d. N(0, scale^2) entries with a
  per-expert seed, so each adapter starts as a small, different perturbation of the base.
- ``heads`` / ``independent``: every trainable expert tensor gets relative noise,
  p <- p + scale * rms(p) * N(0, 1), with a per-expert seed.

``scale = 0`` disables it (then use a stochastic E-step such as ``gumbel`` with ``straight_through``, or
seeded responsibilities in the trainer, to break symmetry). Expert 0 is perturbed like the others: no
expert is privileged.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

SYMMETRY_SEED_STRIDE = 1_000_003  # a prime: seeds of different experts never collide for seeds < stride


def expert_generator(seed: int, expert: int) -> torch.Generator:
    """A CPU generator whose stream depends on (seed, expert) only."""
    return torch.Generator().manual_seed(seed * SYMMETRY_SEED_STRIDE + expert)


@torch.no_grad()
def add_relative_noise_(params: Iterable[nn.Parameter], scale: float, generator: torch.Generator) -> None:
    """p <- p + scale * rms(p) * eps, eps ~ N(0, 1) drawn on CPU (device-independent reproducibility)."""
    if scale <= 0:
        return
    for p in params:
        rms = p.detach().float().pow(2).mean().sqrt()
        if rms == 0:
            continue  # all-zero tensors (biases at init) keep their exact zero
        noise = torch.randn(p.shape, generator=generator, dtype=torch.float32)
        p.add_((scale * rms * noise).to(device=p.device, dtype=p.dtype))


@torch.no_grad()
def add_absolute_noise_(params: Iterable[nn.Parameter], std: float, generator: torch.Generator) -> None:
    """p <- p + std * eps, eps ~ N(0, 1) drawn on CPU."""
    if std <= 0:
        return
    for p in params:
        noise = torch.randn(p.shape, generator=generator, dtype=torch.float32)
        p.add_((std * noise).to(device=p.device, dtype=p.dtype))
