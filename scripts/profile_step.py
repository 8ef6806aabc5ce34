"""Profile one mixdpo training step with torch.profiler: where the time of a step goes, op by op.

    python scripts/profile_step.py --model builtin:smollm2-135m --backend lora --experts 1
    python scripts/profile_step.py --model random:llama-small --backend lora --experts 4 --variant before

The step is the one ``scripts/measure_backends.py`` times (policy forward, objective, backward, AdamW) on
a synthetic batch; one warm-up step first. Prints the top operators by self CPU time (or CUDA time on a
GPU), and the share of the step spent in matmuls, attention and the rest.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(__file__))
from measure_backends import VARIANTS

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

    import mixdpo.chunked_head
    from mixdpo.objective import ObjectiveConfig, mix_dpo_objective
    from mixdpo.policy import MixturePolicy, PolicyConfig

    mixdpo.chunked_head.ENABLED = args.variant not in ("unfused-head", "before")
    options = {"num_expert_layers": 2} if args.backend == "heads" else {}
    policy = MixturePolicy.create(
        PolicyConfig(
            model=args.model, num_experts=args.experts, backend=args.backend, backend_options=options
        )
    ).train()
    if args.variant in ("peft-routing", "before") and hasattr(policy.backend, "block_routing"):
        policy.backend.block_routing = False
    if args.variant == "checkpointing":
        policy.activation_checkpointing_enable()
    torch.manual_seed(0)
    ids = torch.randint(3, min(policy.tokenizer.vocab_size, 5000), (2 * args.batch, args.length))
    completion = torch.zeros_like(ids)
    completion[:, args.length // 2 :] = 1
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "completion_mask": completion}
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-5)

    def step() -> None:
        out = policy(batch)
        loss = mix_dpo_objective(
            out.chosen_logps, out.rejected_logps, out.ref_chosen_logps, out.ref_rejected_logps,
            out.gate_logits, ObjectiveConfig(),
        ).loss.total  # fmt: skip
        opt.zero_grad()
        loss.backward()
        opt.step()

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
