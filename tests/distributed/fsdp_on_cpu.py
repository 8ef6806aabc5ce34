"""Run ``mixdpo`` under accelerate's FSDP on a machine without an accelerator (test-only launcher).

accelerate turns FSDP on only for accelerator process groups (CUDA, XPU, ...): on CPU it silently falls back
to plain multi-process DDP. PyTorch's FSDP2 itself runs on CPU with gloo, so this wrapper lifts that one
check — the launch's state reports FSDP where accelerate would have chosen MULTI_CPU — and then runs the
mixdpo CLI unchanged: accelerate's own FSDP2 preparation (wrapping, sharding, full-state-dict gathering)
and the Trainer's FSDP code paths are what run.

    accelerate launch --config_file CONFIG tests/distributed/fsdp_on_cpu.py train ...
"""

from __future__ import annotations

import os
import runpy
import sys

from accelerate.state import AcceleratorState
from accelerate.utils import DistributedType


def _use_fsdp() -> bool:
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def _get(state: AcceleratorState) -> DistributedType | None:
    value = state.__dict__.get("distributed_type")
    return DistributedType.FSDP if value == DistributedType.MULTI_CPU and _use_fsdp() else value


def _set(state: AcceleratorState, value: DistributedType) -> None:
    state.__dict__["distributed_type"] = value


_init = AcceleratorState.__init__


def _init_keeping_plugin(self, *args, fsdp_plugin=None, **kwargs):
    _init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
    if fsdp_plugin is not None:  # accelerate stores it only on its accelerator branch
        self.fsdp_plugin = fsdp_plugin


if __name__ == "__main__":
    # a data descriptor wins over the shared-state instance dict accelerate writes the type into
    AcceleratorState.distributed_type = property(_get, _set)
    AcceleratorState.__init__ = _init_keeping_plugin
    sys.argv = ["mixdpo", *sys.argv[1:]]
    runpy.run_module("mixdpo.cli.main", run_name="__main__")
