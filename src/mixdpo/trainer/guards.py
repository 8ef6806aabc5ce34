"""Keeping a long run alive: interruption and non-finite gradients (expert collapse: ``collapse.py``).

- :class:`InterruptHandler`: the first SIGINT / SIGTERM asks the Trainer to finish the current step,
  write a complete checkpoint and stop (a second SIGINT stops at once, as usual).
- :class:`NonFiniteGuard`: a step whose gradients contain inf/NaN is skipped (no parameter moves; counted);
  after ``max_consecutive`` such steps in a row training stops and :class:`~mixdpo.errors.NumericalFault`
  says what to change.
"""

from __future__ import annotations

import signal
import threading

import torch
from transformers import TrainerCallback


class InterruptHandler(TrainerCallback):
    """Turns SIGINT / SIGTERM into "save a checkpoint at the end of this step, then stop"."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame) -> None:
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.signal_name = signal.Signals(signum).name

    def on_train_begin(self, args, state, control, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be installed from the main thread
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def on_step_end(self, args, state, control, **kwargs):
        if self.signal_name is not None:
            control.should_save = True
            control.should_training_stop = True

    def on_train_end(self, args, state, control, **kwargs):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()


class NonFiniteGuard(TrainerCallback):
    """Skips optimizer steps whose gradients are not finite; stops after ``max_consecutive`` in a row."""

    def __init__(self, max_consecutive: int) -> None:
        self.max_consecutive = max_consecutive
        self.skipped = 0
        self.consecutive = 0
        self.first_bad_step: int | None = None
        self.failed = False

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        if optimizer is None:
            return
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        # max |g| over all gradients in one fused pass (a per-tensor isfinite costs a sync per tensor):
        # it is inf or NaN exactly when some entry is
        grads = [p.grad for p in params]
        finite = not grads or bool(torch.nn.utils.get_total_norm(grads, norm_type=float("inf")).isfinite())
        if finite:
            self.consecutive = 0
            return
        for p in params:
            p.grad = None  # optimizers skip parameters without a gradient: this step moves nothing
        self.skipped += 1
        self.consecutive += 1
        if self.first_bad_step is None:
            self.first_bad_step = state.global_step + 1
        if self.consecutive >= self.max_consecutive:
            self.failed = True
            control.should_training_stop = True
