"""Which expert backends run under which accelerate distributed setups, decided before training starts.

DDP and ZeRO-1/2 keep every parameter whole on every process: all backends work. FSDP and ZeRO-3 shard
parameters and gather them in the wrapped modules' forward; the ``heads`` backend runs the trunk through
the decoder but calls the top blocks, final norm and head directly with captured arguments, outside the
root module's forward, so under parameter sharding it would read unsharded placeholders. It is refused
there with the alternatives.
"""

from __future__ import annotations

from mixdpo.errors import ConfigError


def check_backend_supported(backend: str, *, fsdp: bool, zero_stage: int | None) -> None:
    """Raise :class:`ConfigError` for a backend that cannot run under the launch's parameter sharding.

    Args:
        backend: ``lora``, ``heads`` or ``independent``.
        fsdp: the run is launched with FSDP.
        zero_stage: the DeepSpeed ZeRO stage, None without DeepSpeed.
    """
    sharded = "FSDP" if fsdp else ("DeepSpeed ZeRO-3" if zero_stage == 3 else None)
    if backend == "heads" and sharded is not None:
        raise ConfigError(
            "backend",
            f"'heads' cannot run under {sharded}: it calls the top transformer blocks directly, outside the "
            "sharded modules' forward. Use backend=lora or backend=independent, or launch with DDP or "
            "DeepSpeed ZeRO-2 (configs/accelerate/ddp.yaml, deepspeed_zero2.yaml)",
        )


def launch_sharding(trainer) -> tuple[bool, int | None]:
    """(FSDP?, ZeRO stage or None) of a constructed ``transformers.Trainer``."""
    fsdp = bool(getattr(trainer, "is_fsdp_enabled", False))
    zero_stage = None
    if getattr(trainer, "is_deepspeed_enabled", False):
        plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
        zero_stage = getattr(plugin, "zero_stage", None)
    return fsdp, zero_stage
