"""``mixdpo env``: print the versions that matter for a bug report (as ``trl env`` does)."""

from __future__ import annotations

import argparse
import importlib.metadata
import platform

NAME = "env"
HELP = "print mixdpo, Python, torch and Hugging Face library versions (paste them into bug reports)"

_PACKAGES = ("torch", "transformers", "peft", "accelerate", "datasets", "trl", "safetensors", "tokenizers")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    from mixdpo import __version__

    print(f"mixdpo: {__version__}")
    print(f"python: {platform.python_version()} ({platform.platform()})")
    for name in _PACKAGES:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
        print(f"{name}: {version}")
    return 0
