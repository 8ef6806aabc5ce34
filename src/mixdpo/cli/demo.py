"""``mixdpo demo``: the README's main job."""

from __future__ import annotations

import argparse

NAME = "demo"
HELP = "run the end-to-end demo on the built-in model and data (the README's main job)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


def run(args: argparse.Namespace) -> int:
    print(
        "mixdpo demo: not built yet. The objective (mixdpo.objective) is in place; the trainer, CLI and "
        "demo land with the issue 'MixDPOTrainer, the data pipeline, the CLI, and the demo'."
    )
    return 0
