"""Measure the expert backends side by side: peak memory and step time for K experts vs K = 1.

    python scripts/measure_backends.py --model builtin:smollm2-135m            # the numbers in issue notes
    python scripts/measure_backends.py --model random:llama-small --steps 3    # quick
    python scripts/measure_backends.py --model builtin:smollm2-135m --backends lora --experts 4 \
        --variants default,peft-routing,unfused-head,before                     # optimisations A/B

Variants switch individual optimisations off, to measure what each buys in the same run: ``peft-routing``
routes the K LoRA experts through PEFT's per-row mixed-adapter path instead of the batched one
(``LoraExperts.block_routing``), ``unfused-head`` keeps the [M, V] logits for backward
(``mixdpo.chunked_head.ENABLED``), ``before`` does both (the code before those optimisations), and
``checkpointing`` turns activation checkpointing on.

Each (backend, K) runs in a fresh subprocess so that its peak RSS (resource.getrusage ru_maxrss) is its
own: model load + one warm-up step + ``--steps`` timed training steps (forward, objective, backward,
AdamW step) on the same synthetic batch. Ratios, not absolute times, are the result: these machines are
shared and noisy. Output: a table and (with --json) a JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

VARIANTS = ("default", "peft-routing", "unfused-head", "before", "checkpointing")


def training_step(
    model: str,
    backend: str,
    k: int,
    batch: int,
    length: int,
    top_layers: int | None,
    variant: str = "default",
):
    """The policy of (backend, K) with ``variant`` applied, and a function running one training step on a
    synthetic batch (policy forward, objective, backward, AdamW). Shared with scripts/profile_step.py."""
    import torch

    import mixdpo.chunked_head
    from mixdpo.objective import ObjectiveConfig, mix_dpo_objective
    from mixdpo.policy import MixturePolicy, PolicyConfig

    mixdpo.chunked_head.ENABLED = variant not in ("unfused-head", "before")

    torch.manual_seed(0)
    options = {"num_expert_layers": 2} if backend == "heads" else {}
    if backend == "lora" and top_layers:
        options["top_layers"] = top_layers
    policy = MixturePolicy.create(
        PolicyConfig(model=model, num_experts=k, backend=backend, backend_options=options)
    ).train()
    if variant in ("peft-routing", "before") and hasattr(policy.backend, "block_routing"):
        policy.backend.block_routing = False
    if variant == "checkpointing":
        policy.activation_checkpointing_enable()
    vocab = policy.tokenizer.vocab_size
    ids = torch.randint(3, min(vocab, 5000), (2 * batch, length))
    completion = torch.zeros_like(ids)
    completion[:, length // 2 :] = 1
    data = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "completion_mask": completion}
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-5)

    def step() -> None:
        out = policy(data)
        loss = mix_dpo_objective(
            out.chosen_logps, out.rejected_logps, out.ref_chosen_logps, out.ref_rejected_logps,
            out.gate_logits, ObjectiveConfig(),
        ).loss.total  # fmt: skip
        opt.zero_grad()
        loss.backward()
        opt.step()

    return policy, step


def one(
    model: str,
    backend: str,
    k: int,
    steps: int,
    batch: int,
    length: int,
    top_layers: int | None,
    variant: str = "default",
) -> dict:
    policy, step_fn = training_step(model, backend, k, batch, length, top_layers, variant)
    times = []
    for step in range(steps + 1):
        start = time.perf_counter()
        step_fn()
        if step > 0:  # the first step is warm-up
            times.append(time.perf_counter() - start)
    trainable = sum(p.numel() for p in policy.parameters() if p.requires_grad)
    total = sum(p.numel() for p in {id(p): p for p in policy.parameters()}.values())
    return {
        "backend": backend,
        "K": k,
        "variant": variant,
        "step_s": statistics.median(times),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "trainable_params": trainable,
        "total_params": total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="random:llama-small")
    parser.add_argument("--backends", default="lora,heads")
    parser.add_argument("--experts", default="1,4")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4, help="pairs per step")
    parser.add_argument("--length", type=int, default=128, help="tokens per sequence")
    parser.add_argument("--lora-top-layers", type=int, default=0, help="lora: adapt only the top N blocks")
    parser.add_argument("--variants", default="default", help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--_one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._one:
        backend, k, variant = args._one.split(":")
        result = one(
            args.model, backend, int(k), args.steps, args.batch, args.length, args.lora_top_layers, variant
        )
        print(json.dumps(result))
        return
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant {unknown[0]!r}; choose from {', '.join(VARIANTS)}")
    rows = []
    for backend in args.backends.split(","):
        for k in map(int, args.experts.split(",")):
            for variant in variants:
                cmd = [sys.executable, __file__, "--model", args.model, "--steps", str(args.steps),
                       "--batch", str(args.batch), "--length", str(args.length),
                       "--lora-top-layers", str(args.lora_top_layers),
                       "--_one", f"{backend}:{k}:{variant}"]  # fmt: skip
                out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ)
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(json.dumps(rows[-1]), flush=True)
    print(
        f"\nmodel {args.model}, batch {args.batch} pairs x {args.length} tokens, median of {args.steps} steps"
    )
    # ratios against K = 1 of the same variant when measured, else against the first variant of that K
    print(f"{'backend':<12}{'K':>3} {'variant':<14}{'step s':>9}{'ratio':>7}{'peak RSS MB':>13}{'ratio':>7}")
    for r in rows:
        same = [b for b in rows if b["backend"] == r["backend"]]
        base = next((b for b in same if b["K"] == 1 and b["variant"] == r["variant"]), None)
        base = base or next(b for b in same if b["K"] == r["K"])
        time_ratio, rss_ratio = r["step_s"] / base["step_s"], r["peak_rss_mb"] / base["peak_rss_mb"]
        print(
            f"{r['backend']:<12}{r['K']:>3} {r['variant']:<14}{r['step_s']:>9.3f}{time_ratio:>7.2f}"
            f"{r['peak_rss_mb']:>13.0f}{rss_ratio:>7.2f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"model": args.model, "batch": args.batch, "length": args.length, "rows": rows}, f, indent=2
            )


if __name__ == "__main__":
    main()
