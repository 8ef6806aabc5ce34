"""A/B in one run: gate-only personalisation with the frozen experts scored once (the default since
2026-11-29) against running them in every step, as before.

Trains MoE-DPO (K = 2, user gate) on ``reviews-users`` with the quality benchmark's budget, then refits the
gate for the task's new users from ``--pairs`` pairs each, alternating the two arms ``--repeats`` times.
Reports the median wall time of each arm, their ratio, the held-out accuracy of both and the largest
difference between the two refitted gates (the arms must fit the same gate, up to float noise).

    python scripts/ab_frozen_experts.py --model builtin:smollm2-135m
    python scripts/ab_frozen_experts.py --model random:llama-1m --pairs 16

Measured 2026-11-29 (random:llama-1m, 8 pairs of 12 new users, 5 epochs, 2 cores shared with two
benchmark runs): experts run every step 45.6 s, scored once 14.2 s (3.2x); held-out accuracy 0.677 in
both; largest difference between the refitted gates 6.3e-05. builtin:smollm2-135m (``--pairs 4 --repeats
1``: 48 pairs of 12 new users, cores shared with two benchmark runs): 357.9 s against 69.8 s (5.1x);
held-out accuracy 1.000 in both; largest gate difference 2.4e-07.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from safetensors.torch import load_file

from mixdpo.bench.quality import read_rows, train_and_evaluate, training_options
from mixdpo.bench.quality_cases import QualityCase, QualitySettings
from mixdpo.bench.regimes import TASK, regime_tier, split_new_users
from mixdpo.tasks import write_task
from mixdpo.tasks.registry import write_jsonl
from mixdpo.trainer.frozen_experts import FrozenExpertScores
from mixdpo.workflows.personalize import personalize_run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="random:llama-1m")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pairs", type=int, default=8, help="labelled pairs per new user")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each arm, alternated")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ab-frozen-"))
    tier = regime_tier("full")
    files = write_task(TASK, work / "data", seed=args.seed, format="text", **tier.task_sizes)
    options = training_options(
        QualityCase(TASK, "moe-dpo", args.model, args.seed), QualitySettings(), groups=2
    )
    print(f"training MoE-DPO on {args.model} ...")
    train_and_evaluate(options, files, work / "run", log=lambda line: None)
    fit, test = split_new_users(read_rows(files["new_users"]), args.pairs, tier.test_pairs_per_user)
    write_jsonl(fit, work / "fit.jsonl")
    write_jsonl(test, work / "test.jsonl")

    usable = FrozenExpertScores.usable
    seconds: dict[str, list[float]] = {"scored once": [], "run every step": []}
    accuracy: dict[str, float] = {}
    for i in range(args.repeats):
        for arm in seconds:
            FrozenExpertScores.usable = usable if arm == "scored once" else (lambda self: False)
            out = work / f"{arm.replace(' ', '-')}-{i}"
            summary = personalize_run(
                work / "run", work / "fit.jsonl", out_dir=out, log=lambda line: None,
                eval_data=work / "test.jsonl", epochs=tier.personalize_epochs,
            )  # fmt: skip
            seconds[arm].append(summary["wall_time_s"])
            accuracy[arm] = summary["eval"]["mixture_accuracy"]
            print(f"  {arm}: {summary['wall_time_s']:.1f} s, held-out accuracy {accuracy[arm]:.3f}")
    FrozenExpertScores.usable = usable
    gates = [
        load_file(work / f"{arm.replace(' ', '-')}-0" / "policy" / "gate.safetensors") for arm in seconds
    ]
    gap = max((gates[0][n] - gates[1][n]).abs().max().item() for n in gates[0])
    once, every = (statistics.median(v) for v in seconds.values())
    print(f"\n{args.model}, {len(fit)} pairs of {len({r['user_id'] for r in fit})} new users, "
          f"{tier.personalize_epochs:g} epochs, median of {args.repeats}:")  # fmt: skip
    print(f"  experts run every step {every:.1f} s, scored once {once:.1f} s: {every / once:.1f}x faster")
    print(f"  held-out accuracy {accuracy['run every step']:.3f} vs {accuracy['scored once']:.3f}; "
          f"largest gate difference {gap:.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
