"""Count the work of a training step: decoder-block passes by kind, FLOPs (analytic and executed), and
this machine's matmul throughput (the roofline the achieved FLOP/s is compared with).

Notation (DESIGN.md): a step scores B pairs, i.e. R = 2B sequences of T tokens, C of them completion
tokens; the model has L blocks of width d, V vocabulary entries and P_lin weights in each block's linear
layers.

Analytic FLOPs are the work the method *needs* (multiply-adds x 2, matmuls only):

    block forward, one sequence   f_blk = 2 T P_lin + 4 T^2 d           (projections + QK^T and AV)
    head forward, one sequence    f_head = 2 d V C                      (only completion positions)
    backward                      1x forward of a layer whose input needs a gradient (frozen weights)
                                  + 1x forward for its trainable weights; attention 2.5x (SDPA recomputes
                                  the scores)

The executed FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` while a real step runs;
executed / analytic > 1 is work spent beyond the need (e.g. the LM head applied to prompt positions).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import torch
from torch import nn

KINDS = ("trunk", "expert", "reference")


# --- architecture numbers ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shape:
    """What the analytic FLOP count needs from a causal LM's config."""

    layers: int
    width: int
    vocab: int
    block_linear_params: int  # P_lin: weights of one block's linear layers
    lora_linear_dims: tuple[tuple[int, int], ...]  # (in, out) of each linear a LoRA adapter wraps

    @classmethod
    def of(cls, config) -> Shape:
        d = config.hidden_size
        heads = config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or d // heads
        kv = getattr(config, "num_key_value_heads", None) or heads
        if config.model_type == "gpt2":
            ff = config.n_inner or 4 * d
            dims = ((d, 3 * d), (d, d), (d, ff), (ff, d))
        else:  # Llama family: q, k, v, o and a gated MLP
            ff = config.intermediate_size
            q, kv_dim = heads * head_dim, kv * head_dim
            dims = ((d, q), (d, kv_dim), (d, kv_dim), (q, d), (d, ff), (d, ff), (ff, d))
        return cls(
            layers=config.num_hidden_layers,
            width=d,
            vocab=config.vocab_size,
            block_linear_params=sum(i * o for i, o in dims),
            lora_linear_dims=dims,
        )

    def params(self) -> int:
        """Non-embedding matmul parameters: L P_lin + the head (d V)."""
        return self.layers * self.block_linear_params + self.width * self.vocab


@dataclass(frozen=True)
class StepWork:
    """Analytic FLOPs of one step, split into policy (forward + backward) and reference (forward)."""

    policy: float
    reference: float

    @property
    def total(self) -> float:
        return self.policy + self.reference


def analytic_step_flops(
    shape: Shape,
    *,
    method: str,
    num_experts: int,
    pairs: int,
    length: int,
    completion: int,
    live_reference: bool,
    lora_r: int = 8,
    expert_layers: int = 2,
    sequential: bool = False,
) -> StepWork:
    """FLOPs one step needs (module docstring). ``method``: ``full`` (full fine-tuning: TRL full,
    mixdpo ``independent``, once per expert), ``lora`` (frozen base + rank-``lora_r`` adapters on every
    linear; mixdpo runs the K experts as K R rows), ``heads`` (frozen trunk once, ``expert_layers`` top
    blocks trained per expert, frozen shared head). ``sequential``: mixdpo's ``sequential_experts`` adds one
    forward of every expert without autograd (its E-step pass)."""
    rows, t, d = 2 * pairs, length, shape.width
    lin = 2 * t * shape.block_linear_params * rows  # projections of one block, all rows
    attn = 4 * t * t * d * rows  # QK^T and AV of one block, all rows
    head = 2 * d * shape.vocab * completion * rows
    adapters = sum(2 * t * lora_r * (i + o) for i, o in shape.lora_linear_dims) * rows
    blocks = shape.layers
    if method == "full":
        # forward, then input and weight gradients of every projection and of the head, SDPA 2.5x
        one = blocks * (3 * lin + 3.5 * attn) + 3 * head
        policy = num_experts * one
        reference = blocks * (lin + attn) + head
    elif method == "lora":
        # frozen weights: input gradients only; adapters: forward + both gradients
        one = blocks * (2 * lin + 3.5 * attn + 3 * adapters) + 2 * head
        policy = num_experts * one
        reference = blocks * (lin + attn) + head
    elif method == "heads":
        trunk = (blocks - expert_layers) * (lin + attn)
        top = expert_layers * (3 * lin + 3.5 * attn) + 2 * head
        policy = trunk + num_experts * top
        reference = expert_layers * (lin + attn) + head  # the base's top blocks on the shared trunk
    else:
        raise ValueError(f"unknown method {method!r}")
    if sequential:
        policy += num_experts * (blocks * (lin + attn + (adapters if method == "lora" else 0)) + head)
    return StepWork(policy=float(policy), reference=float(reference) if live_reference else 0.0)


# --- executed work ----------------------------------------------------------------------------------------
@contextlib.contextmanager
def count_flops() -> Iterator[Callable[[], int]]:
    """Count the FLOPs torch executes inside the block (forward and backward); yields a getter."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        yield counter.get_total_flops
    # the getter stays valid after the block


def decoder_blocks(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks of every causal LM inside ``model`` (GPT-2 ``h``, Llama ``layers``)."""
    found: list[nn.Module] = []
    for module in model.modules():
        if (
            isinstance(module, nn.ModuleList)
            and len(module)
            and type(module[0]).__name__.endswith(("DecoderLayer", "Block"))
        ):
            found.extend(module)
    return found


class BlockPassCounter:
    """Counts decoder-block forwards by kind while attached, in units of *model passes over the batch*:
    sum over block calls of rows / (R L). With K lora experts a step is K expert passes; a heads step is
    (L - M) / L trunk passes plus K M / L expert passes.

    ``kind_of(block, grad_enabled)`` names the kind of a call; ``phase`` overrides it (a context manager
    for the code that computes references)."""

    def __init__(self, blocks: list[nn.Module], kind_of: Callable[[nn.Module, bool], str], depth: int):
        self.depth, self.kind_of = depth, kind_of
        self.rows = dict.fromkeys(KINDS, 0)
        self.calls = dict.fromkeys(KINDS, 0)
        self._phase: str | None = None
        self._frozen = False
        self._handles = [b.register_forward_pre_hook(self._hook, with_kwargs=True) for b in blocks]

    def _hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if self._frozen:
            return
        hidden = args[0] if args else kwargs.get("hidden_states")
        kind = self._phase or self.kind_of(module, torch.is_grad_enabled())
        self.rows[kind] += int(hidden.shape[0])
        self.calls[kind] += 1

    @contextlib.contextmanager
    def phase(self, kind: str) -> Iterator[None]:
        previous, self._phase = self._phase, kind
        try:
            yield
        finally:
            self._phase = previous

    def reset(self) -> None:
        self.rows = dict.fromkeys(KINDS, 0)
        self.calls = dict.fromkeys(KINDS, 0)
        self._frozen = False

    def freeze(self) -> None:
        """Stop counting (later calls are ignored until :meth:`reset`)."""
        self._frozen = True

    def passes(self, sequences: int, steps: int = 1) -> dict[str, float]:
        """Model passes over the batch per step, by kind (``sequences`` = R rows per step)."""
        return {k: self.rows[k] / (sequences * self.depth * max(steps, 1)) for k in KINDS}

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


# --- the roofline -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Roofline:
    """Measured dense-matmul throughput of this machine at the model's shapes (float32 unless stated)."""

    flops_per_s: float
    shape: tuple[int, int, int]
    dtype: str
    threads: int

    def to_dict(self) -> dict:
        return asdict(self)


def matmul_roofline(
    m: int, k: int, n: int, *, dtype: torch.dtype = torch.float32, device: str = "cpu", seconds: float = 1.0
) -> Roofline:
    """Best-of-repeats FLOP/s of ``[m, k] @ [k, n]`` (2 m k n FLOPs), measured for about ``seconds``."""
    a = torch.randn(m, k, dtype=dtype, device=device)
    b = torch.randn(k, n, dtype=dtype, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    torch.matmul(a, b)  # warm-up
    sync()
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline or best == float("inf"):
        start = time.perf_counter()
        torch.matmul(a, b)
        sync()
        best = min(best, time.perf_counter() - start)
    return Roofline(
        2.0 * m * k * n / best, (m, k, n), str(dtype).removeprefix("torch."), torch.get_num_threads()
    )
