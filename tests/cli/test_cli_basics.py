"""The ``mixdpo`` command as a user runs it: a real subprocess of the installed console script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest


def run_cli(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("mixdpo", path=os.path.dirname(sys.executable))
    cmd = [exe, *args] if exe else [sys.executable, "-m", "mixdpo.cli.main", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def test_help_lists_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("demo", "train", "eval", "generate", "personalize", "env"):
        assert command in result.stdout


def test_version():
    from mixdpo import __version__

    result = run_cli("--version")
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_env_reports_library_versions():
    import torch

    result = run_cli("env")
    assert result.returncode == 0
    assert f"torch: {torch.__version__}" in result.stdout


def test_unknown_command_is_a_usage_error():
    result = run_cli("trian")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_user_errors_exit_2_without_traceback(monkeypatch, capsys):
    from mixdpo.cli import env, main
    from mixdpo.errors import ConfigError

    def broken(args, overrides):
        raise ConfigError("beta", "must be > 0, got -1")

    monkeypatch.setattr(env, "run", broken)
    code = main.main(["env"])
    err = capsys.readouterr().err
    assert code == 2
    assert "option 'beta': must be > 0" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["demo", "train", "eval", "generate", "personalize"])
def test_every_command_has_help(command):
    result = run_cli(command, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: mixdpo " + command)
