"""``mixdpo demo``: the README's main job (plain DPO vs MoE-DPO on the built-in reviews-users task)."""

from __future__ import annotations

import argparse

NAME = "demo"
HELP = "train plain DPO and MoE-DPO on the built-in reviews-users task and compare them (the main job)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (
        HELP
        + ".\n\nDefault model: builtin:smollm2-135m (the real SmolLM2-135M-Instruct, offline) with LoRA\n"
        "experts; --model random:llama-tiny runs in about a minute. Extra key=value arguments override\n"
        "training options (e.g. max_steps=100)."
    )
    parser.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    parser.add_argument(
        "--model", default="builtin:smollm2-135m", help="model spec (default builtin:smollm2-135m)"
    )


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    from mixdpo.workflows.demo import demo_run

    demo_run(args.out, model=args.model, overrides=overrides)
    return 0
