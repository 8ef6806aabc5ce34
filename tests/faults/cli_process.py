"""Helpers of the fault-injection suite: run the real command line as a user would."""

from __future__ import annotations

import os
import subprocess
import sys


def cli(*args: str, **popen) -> subprocess.Popen:
    """Start ``mixdpo ARGS`` as a real process (signals, exit codes and stderr as a user sees them)."""
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "mixdpo.cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **popen,
    )


TINY = ["model=random:llama-tiny", "lora_r=4", "learning_rate=3e-3", "disable_tqdm=true", "max_length=256"]
