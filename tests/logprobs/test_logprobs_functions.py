"""The pure functions of mixdpo.logprobs on hand-made logits (no model)."""

from __future__ import annotations

import pytest
import torch

from mixdpo import logprobs
from mixdpo.logprobs import (
    completion_logps_from_hidden,
    completion_logps_from_logits,
    position_ids_from_attention_mask,
    split_chosen_rejected,
    token_count,
)


def _case(seed: int = 0, n: int = 3, t: int = 7, v: int = 11):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, t, v, generator=g, dtype=torch.float64)
    ids = torch.randint(0, v, (n, t), generator=g)
    mask = torch.zeros(n, t, dtype=torch.long)
    mask[0, 3:6] = 1
    mask[1, 1:] = 1
    mask[2, 6] = 1
    return logits, ids, mask


def _by_hand(logits, ids, mask):
    out = []
    for n in range(ids.shape[0]):
        total = 0.0
        for t in range(1, ids.shape[1]):
            if mask[n, t]:
                total += torch.log_softmax(logits[n, t - 1], -1)[ids[n, t]].item()
        out.append(total)
    return torch.tensor(out)


def test_logits_path_matches_hand_computation_in_float32():
    logits, ids, mask = _case()
    got = completion_logps_from_logits(logits, ids, mask)
    # half precision is scored in float32; float32 and float64 keep their precision
    assert got.dtype == (torch.float64 if logits.dtype == torch.float64 else torch.float32)
    torch.testing.assert_close(got, _by_hand(logits, ids, mask).to(got.dtype), atol=1e-5, rtol=1e-6)


def test_average_is_sum_over_count():
    logits, ids, mask = _case(1)
    total = completion_logps_from_logits(logits, ids, mask)
    mean = completion_logps_from_logits(logits, ids, mask, average=True)
    torch.testing.assert_close(mean, total / token_count(mask).float())
    assert token_count(mask).tolist() == [3, 6, 1]


def test_empty_completion_gives_zero_not_nan():
    logits, ids, mask = _case(2)
    mask[1] = 0
    for average in (False, True):
        assert completion_logps_from_logits(logits, ids, mask, average=average)[1].item() == 0.0


def test_positions_and_labels_outside_the_completion_do_not_count():
    logits, ids, mask = _case(3)
    base = completion_logps_from_logits(logits, ids, mask)
    # Logits at positions t - 1 whose token t is not a completion token are never read...
    predicts_completion = torch.zeros_like(mask, dtype=torch.bool)
    predicts_completion[:, :-1] = mask[:, 1:].bool()
    noisy = logits + 100 * torch.randn_like(logits) * (~predicts_completion)[..., None]
    # ... and neither are the labels of prompt / padding tokens.
    relabelled = torch.where(mask.bool(), ids, (ids + 1) % logits.shape[-1])
    torch.testing.assert_close(completion_logps_from_logits(noisy, relabelled, mask), base)


def test_hidden_path_matches_logits_path_values_and_gradients():
    torch.manual_seed(0)
    n, t, h, v = 4, 9, 8, 13
    hidden = torch.randn(n, t, h, requires_grad=True)
    head = torch.nn.Linear(h, v)
    ids = torch.randint(0, v, (n, t))
    mask = (torch.rand(n, t) < 0.5).long()
    mask[:, 0] = 0
    a = completion_logps_from_hidden(hidden, head, ids, mask)
    (grad_a,) = torch.autograd.grad(a.sum(), [hidden])
    b = completion_logps_from_logits(head(hidden), ids, mask)
    (grad_b,) = torch.autograd.grad(b.sum(), [hidden])
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(grad_a, grad_b)


def test_chunking_does_not_change_values(monkeypatch):
    logits, ids, mask = _case(4, n=4, t=12)
    whole = completion_logps_from_logits(logits, ids, mask)
    monkeypatch.setattr(logprobs, "_CHUNK_ELEMENTS", 2 * logits.shape[-1])  # two rows per chunk
    torch.testing.assert_close(completion_logps_from_logits(logits, ids, mask), whole)


def test_half_precision_logits_give_float32():
    logits, ids, mask = _case(5)
    got = completion_logps_from_logits(logits.bfloat16(), ids, mask)
    assert got.dtype == torch.float32
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, _by_hand(logits, ids, mask).float(), atol=0.1, rtol=0.02)


def test_completion_at_position_zero_is_rejected():
    logits, ids, mask = _case(6)
    mask[0, 0] = 1
    with pytest.raises(ValueError, match="position 0"):
        completion_logps_from_logits(logits, ids, mask)


def test_shape_mismatch_is_rejected():
    logits, ids, mask = _case(7)
    with pytest.raises(ValueError, match=r"\[N, T, V\]"):
        completion_logps_from_logits(logits[:, :-1], ids, mask)


def test_position_ids_for_left_and_right_padding():
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    pos = position_ids_from_attention_mask(mask)
    assert pos[0, :3].tolist() == [0, 1, 2]
    assert pos[1, 2:].tolist() == [0, 1, 2]
    assert pos[2].tolist() == [0, 1, 2, 3, 4]
    assert pos.min() >= 0


def test_split_chosen_rejected_follows_the_batch_contract():
    chosen, rejected = split_chosen_rejected(torch.arange(6.0))
    assert chosen.tolist() == [0.0, 1.0, 2.0]
    assert rejected.tolist() == [3.0, 4.0, 5.0]
    with pytest.raises(ValueError, match="2B rows"):
        split_chosen_rejected(torch.arange(5.0))
