"""``mixdpo eval RUN_DIR --data FILE``: evaluate a trained run on held-out pairs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

NAME = "eval"
HELP = "evaluate a trained run on preference pairs (accuracy per group, ARI/NMI, routing)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run directory written by `mixdpo train` (or its policy/ folder)")
    parser.add_argument("--data", required=True, help="pairs to evaluate on (JSONL, JSON, CSV, Parquet...)")
    parser.add_argument(
        "--out", help="where to write the JSON result (default RUN_DIR/eval-<data name>.json)"
    )
    parser.add_argument(
        "--predictions",
        metavar="FILE",
        help="also write one JSON line per pair (P(chosen), correct, the gate's weights, each expert's "
        "margin and responsibility) to FILE, for error analysis",
    )
    parser.add_argument("--batch-size", type=int, default=16, help="pairs per forward pass (default 16)")
    parser.add_argument(
        "--known-users-only",
        action="store_true",
        help="treat users unseen in training as errors instead of routing them with the fallback",
    )
    parser.add_argument("--skip-invalid", action="store_true", help="skip and report bad rows")


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    from mixdpo.data import TokenizationSettings, build_preference_dataset
    from mixdpo.errors import ConfigError
    from mixdpo.evaluation import format_comparison
    from mixdpo.policy import MixturePolicy
    from mixdpo.trainer.config_io import load_config
    from mixdpo.workflows import load_run_policy

    for flag, value in (("out", args.out), ("predictions", args.predictions)):
        if value and Path(value).is_dir():  # checked before minutes of scoring, not after
            raise ConfigError(
                flag, f"{value} is a directory; give a file to write, e.g. {Path(value) / 'x.json'}"
            )
    run_dir = Path(args.run_dir)
    if (run_dir / "mixdpo_policy.json").is_file():
        policy, run_dir = MixturePolicy.from_pretrained(run_dir), run_dir.parent
    else:
        policy = load_run_policy(run_dir)
    settings = TokenizationSettings()
    if (run_dir / "config.yaml").is_file():
        settings = load_config(run_dir / "config.yaml", [f"output_dir={run_dir}"]).tokenization_settings()
    dataset, report = build_preference_dataset(
        args.data,
        policy.tokenizer,
        settings,
        skip_invalid=args.skip_invalid,
        known_users=policy.users if args.known_users_only else None,
    )
    print(f"{args.data}: {report.summary()}")
    from mixdpo.evaluation import evaluate_policy

    result = evaluate_policy(policy, dataset, batch_size=args.batch_size, predictions=args.predictions)
    out = Path(args.out) if args.out else run_dir / f"eval-{Path(args.data).stem}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(format_comparison({f"mixture (K={policy.num_experts})": result}))
    print(f"written to {out}" + (f" (per pair: {args.predictions})" if args.predictions else ""))
    return 0
