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
