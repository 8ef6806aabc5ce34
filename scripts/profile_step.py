"""Profile one mixdpo training step with torch.profiler: where the time of a step goes, op by op.

    python scripts/profile_step.py --model builtin:smollm2-135m --backend lora --experts 1
    python scripts/profile_step.py --model random:llama-small --backend lora --experts 4 --variant before

The step is the one ``scripts/measure_backends.py`` times (its ``training_step``: policy forward, objective,
backward, AdamW on a synthetic batch); one warm-up step first. Prints the top operators by self CPU time (or
CUDA time on a GPU), and the share of the step spent in matmuls, attention and the rest.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(__file__))
from measure_backends import VARIANTS, training_step

MATMUL_OPS = ("aten::mm", "aten::bmm", "aten::addmm", "aten::linear", "aten::matmul", "aten::baddbmm")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="random:llama-small")
    parser.add_argument("--backend", default="lora")
    parser.add_argument("--experts", type=int, default=1)
    parser.add_argument("--batch", type=int, default=4, help="pairs per step")
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--variant", default="default", choices=VARIANTS)
    parser.add_argument("--rows", type=int, default=15, help="operators to list")
    args = parser.parse_args()

    _, step = training_step(
        args.model, args.backend, args.experts, args.batch, args.length, None, args.variant
    )
    step()  # warm-up
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        step()
    key = "self_cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
    events = prof.key_averages()
    print(events.table(sort_by=key, row_limit=args.rows))
    total = sum(getattr(e, key) for e in events)
    matmul = sum(getattr(e, key) for e in events if e.key in MATMUL_OPS)
    attention = sum(getattr(e, key) for e in events if "attention" in e.key or "sdpa" in e.key)
    print(
        f"{args.model} {args.backend} K={args.experts} ({args.variant}): {total / 1e6:.2f} s of op time; "
        f"matmuls {100 * matmul / total:.0f}%, attention kernels {100 * attention / total:.0f}%, "
        f"other {100 * (total - matmul - attention) / total:.0f}%"
    )


if __name__ == "__main__":
    main()
