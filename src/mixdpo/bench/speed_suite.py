"""Run a tier of speed cases, one subprocess each, and write ``speed.json``, ``speed.md`` and (optionally)
the ``BENCHMARKS.md`` section."""

from __future__ import annotations

import datetime
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mixdpo.bench.sections import hardware
from mixdpo.bench.speed import CaseResult, run_case_subprocess
from mixdpo.bench.speed_cases import SpeedSettings, Tier
from mixdpo.bench.speed_report import check_targets, markdown_table, targets_table, update_section
from mixdpo.bench.work import Shape, matmul_roofline


def _roofline(settings: SpeedSettings) -> dict[str, Any]:
    """Dense matmul FLOP/s at the model's MLP shape ([2B T, d] @ [d, ff]), at the cases' thread count."""
    from mixdpo.models import load_model_and_tokenizer

    config: Any = load_model_and_tokenizer(settings.model, seed=settings.seed).model.config
    shape = Shape.of(config)
    ff = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or 4 * shape.width
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if settings.precision == "bf16" else torch.float32
        roof = matmul_roofline(
            2 * settings.batch * settings.length, shape.width, ff, dtype=dtype, device=device
        )
    finally:
        torch.set_num_threads(threads)
    return roof.to_dict()


def run_speed_suite(
    tier_name: str,
    tier: Tier,
    out_dir: Path,
    *,
    benchmarks_md: Path | None = None,
    command: str = "",
    timeout: float | None = None,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> dict[str, Any]:
    """Measure every case of ``tier``; write ``out_dir/speed.json`` and ``out_dir/speed.md``; replace the
    speed section of ``benchmarks_md`` when given. Returns the JSON document."""
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    settings = tier.settings
    log(f"matmul roofline at the model's shapes ({settings.threads} thread(s))...")
    roof = _roofline(settings)
    log(f"  {roof['flops_per_s'] / 1e9:.1f} GFLOP/s for {roof['shape']}")
    rows: list[dict[str, Any]] = []
    document: dict[str, Any] = {
        "tier": tier_name,
        "command": command,
        "date": datetime.date.today().isoformat(),
        "hardware": hardware(),
        "settings": settings.to_dict(),
        "roofline": roof,
        "wall_s": 0.0,
        "rows": rows,
        "targets": [],
    }
    for i, case in enumerate(tier.cases, 1):
        log(f"[{i}/{len(tier.cases)}] {case.name}" + (f" [{case.batch}x{case.length}]" if case.batch else ""))
        result: CaseResult = run_case_subprocess(case, settings, timeout=timeout)
        rows.append(result.to_dict())
        if result.error:
            log(f"  failed: {result.error}")
        else:
            log(f"  {result.step_s:.3f} s/step, peak {result.peak_mb:.0f} MiB")
        # written after every case: a long run stopped half-way still leaves its measurements
        document["wall_s"] = time.perf_counter() - started
        document["targets"] = [c.__dict__ for c in check_targets(rows, roof["flops_per_s"])]
        (out_dir / "speed.json").write_text(json.dumps(document, indent=2))
        (out_dir / "speed.md").write_text(report_markdown(document))
    if benchmarks_md is not None:
        update_section(benchmarks_md, report_markdown(document))
    return document


def report_markdown(document: dict[str, Any]) -> str:
    """The speed report as markdown: how it was made, the targets, then the table."""
    s = document["settings"]
    roof = document["roofline"]
    checks = check_targets(document["rows"], roof["flops_per_s"])
    memory = (
        "CUDA peak allocated" if any(r.get("memory_kind") == "cuda" for r in document["rows"]) else "peak RSS"
    )
    return (
        f"## Speed and memory against TRL's DPOTrainer ({document['tier']} tier)\n\n"
        f"Command: `{document['command']}` ({document['date']}, "
        f"wall time {document['wall_s'] / 60:.1f} min)\n\n"
        f"Hardware and versions: {document['hardware']}.\n\n"
        f"Model `{s['model']}`, {s['batch']} pairs × {s['length']} tokens per step unless a case says "
        f"[batch×length] (half prompt, half completion, the same token ids in every case), {s['precision']}, "
        f"{s['threads']} thread(s), no activation checkpointing; median of {s['steps']} steps after "
        f"{s['warmup']} warm-up step(s), each case in its own process; memory is the {memory} of that "
        f"process (model loading included). TRL runs `DPOTrainer` (full fine-tuning with a reference copy, "
        f"or LoRA r={s['lora_r']} on all linear layers with the base as reference); mixdpo runs "
        f"`MixDPOTrainer` with the same LoRA settings, `heads` with {s['heads_layers']} expert blocks. "
        f'"× TRL" compares with TRL doing the same job for K = 1 (LoRA for lora/heads, full fine-tuning '
        f'for independent) with the same reference setting; "× K=1" with the same backend at K = 1.\n\n'
        f"Passes are decoder-block forwards in units of one model pass over the batch (rows / (2B L)); "
        f"GFLOP executed is counted by `FlopCounterMode` over one real step, (needed) is the analytic count "
        f"of `mixdpo.bench.work`; GFLOP/s uses the needed FLOPs; the matmul peak is "
        f"{roof['flops_per_s'] / 1e9:.1f} GFLOP/s, `torch.matmul` at {tuple(roof['shape'])} {roof['dtype']} "
        f"measured in the same run.\n\n"
        f"### Targets\n\n{targets_table(checks)}\n"
        f"### All cases\n\n{markdown_table(document['rows'], roof['flops_per_s'])}"
    )
