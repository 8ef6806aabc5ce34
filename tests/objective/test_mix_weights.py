"""Mix-DPO's Robbins-Monro weight update, including the distributed (summed) form."""

from __future__ import annotations

import pytest
import torch

from mixdpo.objective import robbins_monro_step_size, robbins_monro_update


def test_update_by_hand():
    w = torch.tensor([0.5, 0.5])
    q = torch.tensor([[1.0, 0.0], [0.8, 0.2], [0.6, 0.4]])  # mean = [0.8, 0.2]
    new = robbins_monro_update(w, q, step_size=0.25)
    assert new.tolist() == pytest.approx([0.75 * 0.5 + 0.25 * 0.8, 0.75 * 0.5 + 0.25 * 0.2])
    assert robbins_monro_update(w, q, step_size=1.0).tolist() == pytest.approx([0.8, 0.2])
    assert w.tolist() == [0.5, 0.5]  # not modified in place


def test_two_processes_with_summed_statistics_equal_one_process():
    torch.manual_seed(0)
    q = torch.softmax(torch.randn(10, 3), -1)
    w = torch.tensor([0.2, 0.3, 0.5])
    one = robbins_monro_update(w, q, 0.3)
    # Uneven shards (6 + 4 pairs): the reduction must sum counts too, not average means.
    shards = [q[:6], q[6:]]

    def fake_all_reduce_for(rank):
        def reduce_sum(local):
            others = [
                torch.cat([s.sum(0), s.new_tensor([float(s.shape[0])])])
                for j, s in enumerate(shards)
                if j != rank
            ]
            return local + sum(others)

        return reduce_sum

    for rank, shard in enumerate(shards):
        torch.testing.assert_close(
            robbins_monro_update(w, shard, 0.3, reduce_sum=fake_all_reduce_for(rank)), one
        )


def test_repeated_updates_converge_to_the_mean_responsibility():
    q = torch.tensor([[0.9, 0.1]] * 3 + [[0.1, 0.9]])  # mean [0.7, 0.3]
    w = torch.tensor([0.5, 0.5])
    for t in range(2000):
        w = robbins_monro_update(w, q, robbins_monro_step_size(t, kappa=0.7))
    assert w.tolist() == pytest.approx([0.7, 0.3], abs=1e-3)


def test_floor_keeps_weights_positive_and_normalised():
    new = robbins_monro_update(torch.tensor([0.5, 0.5]), torch.tensor([[1.0, 0.0]]), 1.0, min_weight=0.05)
    assert new.tolist() == pytest.approx([1 / 1.05, 0.05 / 1.05])
    with pytest.raises(ValueError, match="min_weight"):
        robbins_monro_update(torch.tensor([0.5, 0.5]), torch.tensor([[1.0, 0.0]]), 1.0, min_weight=0.5)


def test_step_sizes():
    assert robbins_monro_step_size(0) == 1.0
    assert robbins_monro_step_size(3, kappa=1.0) == pytest.approx(0.25)
    assert robbins_monro_step_size(8, kappa=0.5 + 1e-9, offset=1.0) == pytest.approx(1 / 3, rel=1e-6)
    with pytest.raises(ValueError, match="kappa"):
        robbins_monro_step_size(1, kappa=0.5)
    with pytest.raises(ValueError, match="offset"):
        robbins_monro_step_size(1, offset=0.5)
    with pytest.raises(ValueError, match="step_size"):
        robbins_monro_update(torch.tensor([1.0]), torch.ones(1, 1), 1.5)
