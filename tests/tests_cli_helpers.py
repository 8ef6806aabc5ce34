"""Running the installed ``mixdpo`` console script as a user does (a real subprocess)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys


def run_mixdpo(*args: str, timeout: float = 600, cwd=None) -> subprocess.CompletedProcess:
    exe = shutil.which("mixdpo", path=os.path.dirname(sys.executable))
    cmd = [exe, *args] if exe else [sys.executable, "-m", "mixdpo.cli.main", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd)
