"""The fused output-embedding log-prob: the same values and gradients as plain autograd, no logits kept."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from mixdpo.chunked_head import fusable_head, head_token_logps


def _plain(hidden, head, targets):
    return F.log_softmax(head(hidden).double(), dim=-1).gather(-1, targets[:, None]).squeeze(-1)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("train_head", [False, True])
@pytest.mark.parametrize("chunk", [7 * 11, 1 << 20])  # several chunks of 7 rows; one chunk
def test_values_and_gradients_match_plain_autograd(bias, train_head, chunk):
    torch.manual_seed(0)
    m, h, v = 30, 8, 11
    head = nn.Linear(h, v, bias=bias).double().requires_grad_(train_head)
    hidden = torch.randn(m, h, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, v, (m,))
    weights = torch.randn(m, dtype=torch.float64)

    fused = head_token_logps(hidden, head, targets, chunk_elements=chunk)
    plain = _plain(hidden, head, targets)
    torch.testing.assert_close(fused, plain)
    params = [hidden] + ([p for p in head.parameters()] if train_head else [])
    got = torch.autograd.grad((fused * weights).sum(), params)
    want = torch.autograd.grad((plain * weights).sum(), params)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w)


def test_gradcheck():
    torch.manual_seed(1)
    head = nn.Linear(4, 5).double()
    hidden = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 5, (6,))
    assert torch.autograd.gradcheck(
        lambda x, w, b: _fused(x, w, b, targets), (hidden, head.weight, head.bias)
    )


def _fused(x, w, b, targets):
    from mixdpo.chunked_head import _ChunkedHeadLogProb

    return _ChunkedHeadLogProb.apply(x, w, b, targets, 2 * 5)


def test_keeps_no_logits_for_backward():
    torch.manual_seed(0)
    m, h, v = 64, 16, 1000
    head = nn.Linear(h, v, bias=False)
    hidden = torch.randn(m, h, requires_grad=True)
    targets = torch.randint(0, v, (m,))
    saved: dict[str, list[int]] = {"fused": [], "plain": []}
    for name, fn in (("fused", lambda: head_token_logps(hidden, head, targets)), ("plain", lambda: _plain(
        hidden, head, targets))):  # fmt: skip
        with torch.autograd.graph.saved_tensors_hooks(
            lambda t, n=name: saved[n].append(t.numel()) or t, lambda t: t
        ):
            fn().sum().backward()
    assert max(saved["plain"]) >= m * v  # autograd keeps the logits
    assert max(saved["fused"]) < m * v  # only h, W (a parameter: no copy), targets and logsumexp


def test_low_precision_matches_the_unfused_path():
    torch.manual_seed(0)
    head = nn.Linear(16, 50, bias=False).to(torch.bfloat16)
    hidden = torch.randn(12, 16, dtype=torch.bfloat16)
    targets = torch.randint(0, 50, (12,))
    fused = head_token_logps(hidden, head, targets)
    assert fused.dtype == torch.float32
    unfused = head(hidden).float()
    unfused = unfused.gather(-1, targets[:, None]).squeeze(-1) - torch.logsumexp(unfused, -1)
    torch.testing.assert_close(fused, unfused)


def test_only_plain_hookless_linears_are_fused():
    head = nn.Linear(4, 5)
    assert fusable_head(head)
    handle = head.register_forward_hook(lambda *a: None)
    assert not fusable_head(head)  # hooks must still run: the module is called instead
    handle.remove()
    assert not fusable_head(nn.Embedding(5, 4))
    assert not fusable_head(lambda x: x)
