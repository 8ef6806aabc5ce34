"""``mixdpo bench speed``: TRL's ``DPOTrainer`` and ``MixDPOTrainer`` side by side on identical batches.

Every case runs real training steps of its library's trainer (a ``transformers.Trainer``: data loading,
forward, loss, backward, optimizer step) on the same model, the same token ids (:mod:`.synthetic`), the
same batch size, sequence length, precision and thread count. A step is timed from the Trainer's
``on_step_begin`` to its ``on_step_end`` (collation excluded for both); the median over ``steps`` steps
after ``warmup`` steps is reported. One more step runs under ``FlopCounterMode`` (not timed) to count the
FLOPs it executes, and decoder-block passes are counted by kind
(:class:`~mixdpo.bench.work.BlockPassCounter`).

Each case runs in its own subprocess (``python -m mixdpo.bench.speed --case JSON``) so that its peak
memory is its own: the peak RSS (``ru_maxrss``) on CPU, ``torch.cuda.max_memory_allocated`` on a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import TrainerCallback

from mixdpo.bench.speed_cases import SpeedCase, SpeedSettings
from mixdpo.bench.synthetic import ordinary_token_range, synthetic_pairs
from mixdpo.bench.work import BlockPassCounter, Shape, analytic_step_flops, decoder_blocks


class _StepProbe(TrainerCallback):
    """Times steps ``warmup .. warmup+steps-1``, counts block passes over them, then counts the FLOPs of the
    next (last) step."""

    def __init__(self, warmup: int, steps: int, counter: BlockPassCounter | None):
        self.warmup, self.steps, self.counter = warmup, steps, counter
        self.times: list[float] = []
        self.flops = 0
        self.peak_mb: float | None = None  # peak memory up to the end of the timed steps
        self._start = 0.0
        self._flop_mode: Any = None

    def _sync(self) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def on_step_begin(self, args, state, control, **kwargs):
        step = state.global_step  # steps done so far
        if step == self.warmup and self.counter is not None:
            self.counter.reset()
        if step == self.warmup + self.steps:
            from torch.utils.flop_counter import FlopCounterMode

            if self.counter is not None:
                self.counter.freeze()  # passes of the timed steps only
            # Read the peak now: FlopCounterMode raises it (under activation checkpointing it nearly doubled
            # lora K=4's peak RSS on SmolLM2), and the FLOP step is not part of the measurement.
            self.peak_mb = _peak_memory_mb()[0]

            self._flop_mode = FlopCounterMode(display=False)
            self._flop_mode.__enter__()
        self._sync()
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self._sync()
        elapsed = time.perf_counter() - self._start
        done = state.global_step
        if self.warmup < done <= self.warmup + self.steps:
            self.times.append(elapsed)
        if self._flop_mode is not None:
            self._flop_mode.__exit__(None, None, None)
            self.flops = int(self._flop_mode.get_total_flops())
            self._flop_mode = None


def _peak_memory_mb() -> tuple[float, str]:
    """Peak memory of this process so far: CUDA peak allocated on a GPU, else the peak RSS."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20, "cuda"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss"


@dataclass
class CaseResult:
    """What one case measured (times in seconds, memory in MiB, FLOPs per step)."""

    case: dict[str, Any]
    step_s: float | None = None
    step_times: list[float] = field(default_factory=list)
    peak_mb: float | None = None
    memory_kind: str = "rss"
    passes: dict[str, float] = field(default_factory=dict)
    executed_flops: int | None = None
    analytic_flops: float | None = None
    trainable_params: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _trainer_args(case: SpeedCase, settings: SpeedSettings, out_dir: str, steps: int) -> dict[str, Any]:
    """The Trainer arguments both libraries get, so that they run the same steps the same way. TRL
    defaults to bf16 autocast and gradient checkpointing; here both run at the settings' precision and
    recompute activations only where a case asks for it."""
    return {
        "output_dir": out_dir,
        "per_device_train_batch_size": case.batch or settings.batch,
        "per_device_eval_batch_size": case.batch or settings.batch,
        "max_steps": steps,
        "learning_rate": 1e-6,
        "logging_steps": 10**6,
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "max_length": None,
        "precompute_ref_log_probs": case.cached_reference,
        "seed": settings.seed,
        "use_cpu": not torch.cuda.is_available(),
        "bf16": settings.precision == "bf16",
        "activation_checkpointing": settings.gradient_checkpointing or case.checkpointing,
    }


def _trl_trainer(case: SpeedCase, settings: SpeedSettings, pairs: list[dict], out_dir: str, steps: int):
    import copy

    from datasets import Dataset
    from peft import LoraConfig
    from trl import DPOConfig, DPOTrainer

    from mixdpo.models import load_model_and_tokenizer

    class PreTokenizedDPOTrainer(DPOTrainer):
        # The pairs are token ids already (the same ids mixdpo gets); TRL's text pipeline is skipped.
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return dataset

    loaded = load_model_and_tokenizer(settings.model, seed=settings.seed)
    config = DPOConfig(
        **_trainer_args(case, settings, out_dir, steps),
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    peft_config, ref_model = None, None
    if case.method == "lora":
        peft_config = LoraConfig(
            r=settings.lora_r, lora_alpha=2 * settings.lora_r, target_modules="all-linear"
        )
    elif not case.cached_reference:
        ref_model = copy.deepcopy(loaded.model)  # TRL cannot rebuild an in-memory model by name
    return PreTokenizedDPOTrainer(
        model=loaded.model,
        ref_model=ref_model,
        args=config,
        train_dataset=Dataset.from_list(pairs),
        processing_class=loaded.tokenizer,
        peft_config=peft_config,
    )


def _mixdpo_trainer(case: SpeedCase, settings: SpeedSettings, pairs: list[dict], out_dir: str, steps: int):
    from mixdpo.data import PreferenceDataset
    from mixdpo.trainer import MixDPOConfig, MixDPOTrainer

    config = MixDPOConfig(
        model=settings.model,
        model_seed=settings.seed,
        num_experts=case.experts,
        backend=case.method,
        lora_r=settings.lora_r,
        lora_alpha=2 * settings.lora_r,
        heads_num_layers=settings.heads_layers,
        sequential_experts=case.sequential,
        reference_cache_dir=os.path.join(out_dir, "reference-cache"),
        **_trainer_args(case, settings, out_dir, steps),
    )
    return MixDPOTrainer(args=config, train_dataset=PreferenceDataset(pairs))


def _attach_counter(case: SpeedCase, trainer: Any, depth: int) -> BlockPassCounter:
    model = trainer.model
    if case.library == "trl":
        blocks = decoder_blocks(model) + (
            decoder_blocks(trainer.ref_model) if trainer.ref_model is not None else []
        )
        # TRL's policy forward runs with autograd, its reference forward under no_grad
        return BlockPassCounter(blocks, lambda block, grad: "expert" if grad else "reference", depth)

    def kind_of(block: torch.nn.Module, grad: bool) -> str:
        return "expert" if any(p.requires_grad for p in block.parameters()) else "trunk"

    counter = BlockPassCounter(decoder_blocks(model), kind_of, depth)
    backend = model.backend
    for name in ("reference_logps", "_reference_from_trunk"):
        method = getattr(backend, name, None)
        if method is None:
            continue

        def wrapped(*args, _method=method, **kwargs):
            with counter.phase("reference"):
                return _method(*args, **kwargs)

        setattr(backend, name, wrapped)  # instance attribute: shadows the method for this run only
    return counter


def run_case(case: SpeedCase, settings: SpeedSettings) -> CaseResult:
    """Measure one case in this process (see the module docstring)."""
    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    from mixdpo.models import load_model_and_tokenizer

    batch, length = case.batch or settings.batch, case.length or settings.length
    probe_model = load_model_and_tokenizer(settings.model, seed=settings.seed)
    shape = Shape.of(probe_model.model.config)
    token_range = ordinary_token_range(probe_model.tokenizer)
    del probe_model
    prompt = length // 2
    completion = length - prompt
    steps = settings.warmup + settings.steps + 1  # + the FLOP-counting step
    pairs = synthetic_pairs(batch * steps, prompt, completion, token_range, seed=settings.seed)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory(prefix="mixdpo-bench-") as out_dir:
        build = _trl_trainer if case.library == "trl" else _mixdpo_trainer
        trainer = build(case, settings, pairs, out_dir, steps)
        counter = _attach_counter(case, trainer, shape.layers)
        probe = _StepProbe(settings.warmup, settings.steps, counter)
        trainer.add_callback(probe)
        trainer.train()
        trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        counter.remove()
    peak, kind = _peak_memory_mb()
    if probe.peak_mb is not None:
        peak = probe.peak_mb
    work = analytic_step_flops(
        shape,
        method=case.analytic_method,
        num_experts=case.experts,
        pairs=batch,
        length=length,
        completion=completion,
        live_reference=not case.cached_reference,
        lora_r=settings.lora_r,
        expert_layers=settings.heads_layers,
        sequential=case.sequential,
    )
    return CaseResult(
        case=case.to_dict(),
        step_s=statistics.median(probe.times),
        step_times=probe.times,
        peak_mb=peak,
        memory_kind=kind,
        passes=counter.passes(2 * batch, settings.steps),
        executed_flops=probe.flops,
        analytic_flops=work.total,
        trainable_params=trainable,
    )


def run_case_subprocess(case: SpeedCase, settings: SpeedSettings, timeout: float | None = None) -> CaseResult:
    """:func:`run_case` in a fresh Python process (its own peak memory); a failure becomes ``error``."""
    payload = json.dumps({"case": case.to_dict(), "settings": settings.to_dict()})
    env = {**os.environ, "OMP_NUM_THREADS": str(settings.threads), "MKL_NUM_THREADS": str(settings.threads)}
    env.setdefault("HF_HUB_OFFLINE", "1")
    try:
        out = subprocess.run(
            [sys.executable, "-m", "mixdpo.bench.speed", "--case", payload],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return CaseResult(case=case.to_dict(), error=f"timed out after {timeout:.0f} s")
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
        reason = "killed (out of memory?)" if out.returncode in (-9, 137) else " | ".join(tail)
        return CaseResult(case=case.to_dict(), error=f"exit {out.returncode}: {reason}")
    return CaseResult(**json.loads(lines[-1]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Run one speed-benchmark case (used by `mixdpo bench speed`)."
    )
    parser.add_argument("--case", required=True, help="JSON {case: ..., settings: ...}")
    args = parser.parse_args(argv)
    payload = json.loads(args.case)
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    result = run_case(SpeedCase(**payload["case"]), SpeedSettings(**payload["settings"]))
    print(json.dumps(result.to_dict()), flush=True)


if __name__ == "__main__":
    main()
