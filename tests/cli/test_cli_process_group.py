"""A command that succeeds shuts its process group down before the interpreter exits (left to finalisation,
Gloo's threads can abort the process after its work is done: exit -6 for a launch that succeeded); after an
error the group is left alone, since another process may still be inside a collective."""

from __future__ import annotations

import pytest
import torch.distributed as dist

from mixdpo.cli.main import main


@pytest.fixture
def process_group(tmp_path):
    """A one-process Gloo group, as torchrun / accelerate launch would have started."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


def test_success_destroys_the_process_group(process_group, capsys):
    assert dist.is_initialized()
    assert main(["env"]) == 0
    assert "mixdpo:" in capsys.readouterr().out
    assert not dist.is_initialized()


def test_an_error_leaves_the_process_group(process_group, capsys):
    assert main(["train", "num_expert=3"]) == 2
    assert "num_experts" in capsys.readouterr().err
    assert dist.is_initialized()


def test_no_process_group_is_a_no_op(capsys):
    assert not dist.is_initialized()
    assert main(["env"]) == 0
    assert not dist.is_initialized()


@pytest.mark.parametrize(("argv", "code"), [(["env"], 0), (["train", "num_expert=3"], 2)])
def test_a_launched_process_exits_after_the_exit_handlers_without_finalisation(argv, code):
    """Under a launch (WORLD_SIZE > 1) the command's exit code, flushed output and Python's exit handlers
    survive ``os._exit``, which skips the teardown where a library thread could abort the process."""
    import os
    import subprocess
    import sys

    script = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('exit handler ran', flush=True))\n"
        f"sys.argv = ['mixdpo', *{argv!r}]\n"
        "from mixdpo.cli.main import entry\n"
        "entry()\n"
    )
    env = {**os.environ, "WORLD_SIZE": "2"}
    command = [sys.executable, "-c", script]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == code, result.stderr[-2000:]
    assert "exit handler ran" in result.stdout
    assert ("mixdpo:" in result.stdout) if code == 0 else ("num_experts" in result.stderr)
