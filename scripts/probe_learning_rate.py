"""Which policy learning rate does a model train at without diverging? Plain DPO (K = 1) on a quality task
with the full tier's settings, a few steps per rate, training loss logged every 2 steps.

    python scripts/probe_learning_rate.py --model random:llama-20m --rates 1e-3,3e-4

Measured 2026-11-29 (cross-domain, seed 0, 16 steps, cores shared with a benchmark run): at 3e-3 (the
0.8M model's rate) a first full-tier try logged DPO losses of 16-22 and was stopped; at 1e-3 the loss
swung between 1.26 and 10.6 (last 1.66), held-out accuracy 66.2%; at 3e-4 it stayed between 0.86 and
5.29 and ended at 0.86, held-out 70.0%. The full tier trains ``random:llama-20m`` at 3e-4.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from mixdpo.bench.quality import train_and_evaluate, training_options
from mixdpo.bench.quality_cases import QualityCase, tier
from mixdpo.tasks import write_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random:llama-20m")
    parser.add_argument("--task", default="cross-domain")
    parser.add_argument("--rates", default="1e-3,3e-4", help="comma-separated learning rates")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    settings = tier("full").settings
    with tempfile.TemporaryDirectory() as tmp:
        files = write_task(args.task, Path(tmp) / "data", seed=args.seed, format="text",
                           **settings.task_sizes.get(args.task, {}))  # fmt: skip
        for rate in (float(r) for r in args.rates.split(",")):
            own = replace(settings, model_learning_rates={args.model: rate}, max_steps=args.steps)
            options = training_options(QualityCase(args.task, "dpo", args.model, args.seed), own, groups=2)
            options["logging_steps"] = 2
            start = time.perf_counter()
            prefix = f"lr={rate} "
            evaluation, _, _ = train_and_evaluate(
                options, files, Path(tmp) / f"lr{rate}", log=lambda line, p=prefix: print(p + line)
            )
            accuracy = evaluation.get("mixture_accuracy")
            print(f"lr={rate}: held-out accuracy {accuracy:.3f}, {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
