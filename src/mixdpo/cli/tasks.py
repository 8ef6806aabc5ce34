"""``mixdpo tasks``: list the built-in multi-preference tasks, or write one to disk as JSONL splits."""

from __future__ import annotations

import argparse

NAME = "tasks"
HELP = "list the built-in multi-preference tasks, or write one (train/eval/new_users JSONL + README)"
DESCRIPTION = """\
Built-in tasks have hidden groups that disagree (the `group` column, for evaluation only). Three are made
from word lists (reviews-users, reviews-domains, reviews-mixed); three from completions sampled from
SmolLM2-135M-Instruct and scored by reward functions, the paper's way (multi-reward, cross-domain,
personas; --samples takes a scored.jsonl of `mixdpo make-pairs` instead of the shipped one).

examples:
  mixdpo tasks
  mixdpo tasks personas --out data/personas
  mixdpo tasks cross-domain --out data/xd --seed 1 --size train_pairs=100 --format text
  mixdpo train model=builtin:smollm2-135m train_file=data/personas/train.jsonl gate=user num_experts=2
"""


def _size(text: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    if not sep or not value.strip().lstrip("-").isdigit():
        raise argparse.ArgumentTypeError(f"expected name=integer, e.g. train_pairs=120; got {text!r}")
    return name.strip(), int(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = DESCRIPTION
    parser.add_argument("task", nargs="?", help="the task to write (without: list the tasks and their sizes)")
    parser.add_argument("--out", help="output directory (required with a task)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--format", default="chat", help="chat (default) or text")
    parser.add_argument("--samples", help="sampled tasks: a scored.jsonl of `mixdpo make-pairs`")
    parser.add_argument(
        "--size", type=_size, action="append", default=[], help="override a size, e.g. train_pairs=120"
    )


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    from mixdpo.errors import ConfigError
    from mixdpo.tasks import list_tasks, task_sizes, write_task

    if args.task is None:
        for name, summary in list_tasks().items():
            sizes = ", ".join(f"{k}={v}" for k, v in task_sizes(name).items())
            print(f"{name:16s} {summary}\n{'':16s} sizes: {sizes}")
        return 0
    if not args.out:
        raise ConfigError("out", f"say where to write the task, e.g. --out data/{args.task}")
    sizes = dict(args.size)
    paths = write_task(args.task, args.out, seed=args.seed, format=args.format, samples=args.samples, **sizes)
    for split in ("train", "eval", "new_users"):
        if split in paths:
            lines = sum(1 for _ in paths[split].open(encoding="utf-8"))
            print(f"{split:10s} {lines:5d} pairs -> {paths[split]}")
    print(f"README and task.json -> {args.out}")
    return 0
