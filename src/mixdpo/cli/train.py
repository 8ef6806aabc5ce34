"""``mixdpo train CONFIG.yaml [key=value ...]``: train a mixture into a run directory."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "train"
HELP = "train a mixture from a YAML config (plus key=value overrides) into a run directory"
DESCRIPTION = """\
Train K experts and a gate with Mix-DPO / MoE-DPO. Options come from CONFIG.yaml and from overrides
written key=value or --key=value after it (they win). The run directory (output_dir) receives
config.yaml, policy/, metrics.jsonl, eval.json (when eval_file is set), report.md and data_report.json.

example:
  mixdpo train run.yaml num_experts=4 gate=prompt+user --learning_rate=1e-4
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = DESCRIPTION
    plain_help = parser.format_help

    def format_help() -> str:
        # The option list needs the config class (torch, transformers): built only when asked for, so
        # that `mixdpo --help` stays fast.
        from mixdpo.cli.config_help import options_text

        parser.epilog = "options (in CONFIG.yaml or as overrides):\n" + options_text()
        return plain_help()

    parser.format_help = format_help  # type: ignore[method-assign]
    parser.add_argument("config", nargs="?", help="YAML file of options (optional if all are overrides)")
    parser.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="CHECKPOINT",
        help="resume from the run's last checkpoint, or from CHECKPOINT",
    )
    parser.add_argument(
        "--help-trainer", action="store_true", help="list the transformers Trainer options (also accepted)"
    )


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    from mixdpo.cli.config_help import options_text

    if args.help_trainer:
        print(options_text(trainer_options=True))
        return 0
    from mixdpo.trainer.config_io import load_config
    from mixdpo.workflows import train_run

    path = args.config
    if path is not None and "=" in path and not Path(path).exists():  # no config file, just overrides
        path, overrides = None, [path, *overrides]
    config = load_config(path, overrides)
    train_run(config, resume=args.resume)
    return 0
