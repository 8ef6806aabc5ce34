"""Fixtures of the distributed tests: one small task, one tiny model on disk, and 1-process reference runs
cached per option set (the DDP, FSDP and DeepSpeed tests compare against the same ones)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from launching import run, train_command
from mixdpo.policy import PolicyConfig
from mixdpo.policy.build import load_base
from mixdpo.tasks import write_task


@pytest.fixture(scope="session")
def task(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("distributed-task")
    return write_task("reviews-users", out, format="text", train_pairs=48, eval_pairs=12, new_user_pairs=12)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """random:llama-tiny saved to a directory. Loaded weights are the same in every launch; a random: model
    built inside DeepSpeed ZeRO-3's partitioned construction (zero.Init) would draw different ones."""
    out = tmp_path_factory.mktemp("llama-tiny")
    base = load_base(PolicyConfig(model="random:llama-tiny"))
    base.model.save_pretrained(out)
    base.tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def one_process(tmp_path_factory, task, tiny_model) -> Callable[[tuple[str, ...]], Path]:
    """options -> the run directory of a 1-process run at batch 4 (the 2-process runs use 2 per process)."""
    root = tmp_path_factory.mktemp("one-process")
    runs: dict[tuple[str, ...], Path] = {}

    def get(options: tuple[str, ...]) -> Path:
        if options not in runs:
            out = root / f"run{len(runs)}"
            command = train_command(out, task, tiny_model, options, batch=4)
            result = run([sys.executable, "-m", "mixdpo.cli.main", *command])
            assert result.returncode == 0, result.stderr[-3000:]
            runs[options] = out / "run"
        return runs[options]

    return get
