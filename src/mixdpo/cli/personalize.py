"""``mixdpo personalize RUN_DIR --data FILE``: refit only the gate for new users or domains."""

from __future__ import annotations

import argparse

NAME = "personalize"
HELP = "refit only the gate for new users or domains (experts frozen), e.g. from a few pairs per user"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a finished run directory (left unchanged)")
    parser.add_argument("--data", required=True, help="pairs of the new users (with user_id) or domain")
    parser.add_argument("--eval-data", help="held-out pairs of the same users, evaluated afterwards")
    parser.add_argument("--out", help="output run directory (default RUN_DIR/personalized)")
    parser.add_argument("--epochs", type=float, default=5.0, help="passes over the data (default 5)")
    parser.add_argument("--max-steps", type=int, default=-1, help="stop after N steps (overrides --epochs)")
    parser.add_argument(
        "--learning-rate", type=float, help="learning rate (default: the run's gate / expert one)"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--train",
        choices=("gate", "experts"),
        default="gate",
        help="gate: refit the gate, experts frozen (default); experts: fine-tune the experts, gate frozen "
        "(what a single policy must do to learn new users; for comparison)",
    )


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    from mixdpo.workflows.personalize import personalize_run

    summary = personalize_run(
        args.run_dir,
        args.data,
        out_dir=args.out,
        eval_data=args.eval_data,
        epochs=args.epochs,
        max_steps=args.max_steps,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        train=args.train,
    )
    trained = (
        f"{summary['gate_parameters_trained']} gate parameters trained, experts frozen"
        if args.train == "gate"
        else f"{summary['expert_parameters_trained']} expert parameters trained, gate frozen"
    )
    print(
        f"personalised {len(summary['new_users'])} new user(s) in {summary['wall_time_s']:.1f} s, {trained}"
    )
    return 0
