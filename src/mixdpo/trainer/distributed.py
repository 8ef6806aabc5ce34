"""Which expert backends run under which accelerate distributed setups, decided before training starts.

DDP and ZeRO-1/2 keep every parameter whole on every process: all backends work. FSDP and ZeRO-3 shard
parameters and gather them in the wrapped modules' forward; the ``heads`` backend runs the trunk through
the decoder but calls the top blocks, final norm and head directly with captured arguments, outside the
root module's forward, so under parameter sharding it would read unsharded placeholders. It is refused
there with the alternatives.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from mixdpo.errors import ConfigError

logger = logging.getLogger(__name__)

# Elements per all-reduce in average_gradients: bounds the flat buffer (100 MB of float32) as DDP's buckets do
_BUCKET_ELEMENTS = 25 * 2**20


def launched_on_cpus_only() -> bool:
    """Several processes (``WORLD_SIZE`` > 1, set by torchrun / accelerate launch) and no accelerator."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    accelerators = (torch.cuda.is_available(), torch.backends.mps.is_available())
    xpu = getattr(torch, "xpu", None)
    return not any(accelerators) and not (xpu is not None and xpu.is_available())


def launch_name(*, fsdp: bool, zero_stage: int | None) -> str | None:
    """``FSDP``, ``DeepSpeed ZeRO-N`` or None (one process, DDP): how messages name a launch."""
    if fsdp:
        return "FSDP"
    return None if zero_stage is None else f"DeepSpeed ZeRO-{zero_stage}"


def end_process_group() -> None:
    """Shut down this process's process groups at the end of a command that succeeded (no-op in one process).

    Left to interpreter finalisation, Gloo's worker threads are torn down while the interpreter is going away
    and the process can abort after its work is done ("terminate called without an active exception",
    exit -6; pytorch/pytorch#190489), which fails a launch that succeeded. Not collective: each process
    shuts its own groups down, so one that finishes first (only the first process evaluates) does not wait.
    Not called after an error, where another process may still be inside a collective."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def check_backend_supported(backend: str, *, fsdp: bool, zero_stage: int | None) -> None:
    """Raise :class:`ConfigError` for a backend that cannot run under the launch's parameter sharding.

    Args:
        backend: ``lora``, ``heads`` or ``independent``.
        fsdp: the run is launched with FSDP.
        zero_stage: the DeepSpeed ZeRO stage, None without DeepSpeed.
    """
    sharded = launch_name(fsdp=fsdp, zero_stage=zero_stage) if fsdp or zero_stage == 3 else None
    if backend == "heads" and sharded is not None:
        raise ConfigError(
            "backend",
            f"'heads' cannot run under {sharded}: it calls the top transformer blocks directly, outside the "
            "sharded modules' forward. Use backend=lora or backend=independent, or launch with DDP or "
            "DeepSpeed ZeRO-2 (configs/accelerate/ddp.yaml, deepspeed_zero2.yaml)",
        )


def check_sequential_supported(sequential_experts: bool, *, fsdp: bool, zero_stage: int | None) -> None:
    """Raise :class:`ConfigError` for ``sequential_experts`` under FSDP or DeepSpeed.

    Its per-expert backward passes nest inside the step's backward. Under DDP that is handled here (see
    :func:`sequential_experts_gradient_sync`); FSDP and DeepSpeed reduce gradients from their own backward
    hooks and end-of-backward callbacks, which nested passes would fire early."""
    launch = launch_name(fsdp=fsdp, zero_stage=zero_stage)
    if not sequential_experts or launch is None:
        return
    raise ConfigError(
        "sequential_experts",
        f"is not supported under {launch} (its nested per-expert backward passes would trigger the gradient "
        "reduction early). Launch with DDP (configs/accelerate/ddp.yaml), or turn it off and use "
        "activation_checkpointing to save memory",
    )


def launch_sharding(trainer) -> tuple[bool, int | None]:
    """(FSDP?, ZeRO stage or None) of a constructed ``transformers.Trainer``."""
    fsdp = bool(getattr(trainer, "is_fsdp_enabled", False))
    zero_stage = None
    if getattr(trainer, "is_deepspeed_enabled", False):
        plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
        zero_stage = getattr(plugin, "zero_stage", None)
    return fsdp, zero_stage


def configure_for_launch(trainer) -> None:
    """Check a constructed MixDPOTrainer's options against its launch (FSDP, DeepSpeed) and adapt them.

    Under ZeRO-3 the weights are partitioned as they load, so precomputing the reference log-probs (one
    no-grad pass of the first process, outside the engine) cannot read them: they are computed in each
    training step's forward instead, as TRL's DPOTrainer does by default."""
    args = trainer.args
    fsdp, zero_stage = launch_sharding(trainer)
    check_backend_supported(trainer.policy.policy_config.backend, fsdp=fsdp, zero_stage=zero_stage)
    check_sequential_supported(args.sequential_experts, fsdp=fsdp, zero_stage=zero_stage)
    launch = launch_name(fsdp=fsdp, zero_stage=zero_stage)
    if launch is not None:
        logger.info("parameters sharded with %s", launch)
    if zero_stage == 3 and args.precompute_ref_log_probs:
        logger.info(
            "DeepSpeed ZeRO-3: reference log-probs computed in each step (precompute_ref_log_probs off)"
        )
        args.precompute_ref_log_probs = False


def parameters_sharded(trainer) -> bool:
    """The launch shards parameters across processes (FSDP, DeepSpeed ZeRO-3): no process holds them whole."""
    fsdp, zero_stage = launch_sharding(trainer)
    return fsdp or zero_stage == 3


@contextmanager
def sequential_experts_gradient_sync(model: torch.nn.Module) -> Iterator[None]:
    """Run one training micro-batch of ``sequential_experts`` under DDP with gradients averaged by hand.

    The sequential step runs K backward passes nested inside the loss's backward; DDP's reducer expects
    one backward per forward and would finalise after the first. So the micro-batch runs with DDP's hooks
    off (``no_sync``) and, if DDP was going to synchronise this micro-batch (the last of a gradient
    accumulation: the Trainer's own ``no_sync`` is not active), the accumulated gradients are averaged across
    processes afterwards, as DDP would have: g <- (1/N) sum_ranks g. Anything else runs unchanged.
    """
    if not isinstance(model, DistributedDataParallel):
        yield
        return
    sync = model.require_backward_grad_sync
    with model.no_sync():
        yield
    if sync:
        average_gradients(p for p in model.parameters() if p.requires_grad)


def average_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Average ``.grad`` across the default process group in flat buckets (None counts as zeros, and every
    parameter ends up with a gradient: the processes must take part in the same all-reduces)."""
    world = dist.get_world_size()
    bucket: list[torch.nn.Parameter] = []
    size = 0
    for p in parameters:
        if bucket and (
            p.dtype != bucket[0].dtype or p.device != bucket[0].device or size >= _BUCKET_ELEMENTS
        ):
            _all_reduce_mean(bucket, world)
            bucket, size = [], 0
        bucket.append(p)
        size += p.numel()
    if bucket:
        _all_reduce_mean(bucket, world)


def _all_reduce_mean(params: list[torch.nn.Parameter], world: int) -> None:
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= world
    for p, g in zip(params, flat.split([p.numel() for p in params]), strict=True):
        p.grad = g.view_as(p).clone() if p.grad is None else p.grad.copy_(g.view_as(p))


@contextmanager
def whole_model_loading() -> Iterator[None]:
    """Models loaded inside are built whole on this process, even in a DeepSpeed ZeRO-3 launch.

    transformers otherwise partitions every model it loads across the processes (``zero.Init``), a
    collective the other processes do not join when one process alone loads a model (the evaluation of the
    saved policy)."""
    from transformers.integrations import deepspeed as hf_deepspeed

    saved = hf_deepspeed._hf_deepspeed_config_weak_ref
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = saved
