"""The batched all-experts LoRA path equals PEFT's per-row mixed-adapter path, values and gradients."""

from __future__ import annotations

import copy

import pytest
import torch

from mixdpo.experts import LoraExperts
from mixdpo.experts.lora_blocks import BlockRouting, supports_blocks

K = 3


def _scored(batch):
    return batch["input_ids"], batch["attention_mask"], batch["completion_mask"]


def _grads(backend):
    return {
        n: p.grad.clone() for n, p in backend.named_parameters() if p.requires_grad and p.grad is not None
    }


@pytest.mark.parametrize("top_layers", [None, 1])
def test_block_routing_matches_peft_per_row_routing(loaded, batch, top_layers):
    twin = copy.deepcopy(loaded.model)  # PEFT wraps its model in place
    blocks = LoraExperts(loaded.model, K, r=4, init_noise=0.05, top_layers=top_layers)
    rows = LoraExperts(twin, K, r=4, init_noise=0.05, top_layers=top_layers)
    rows.load_state_dict(blocks.state_dict())
    rows.block_routing = False
    weights = torch.randn(batch["input_ids"].shape[0], K)  # an arbitrary loss mixing all experts

    out = {}
    for name, backend in (("blocks", blocks), ("rows", rows)):
        logps = backend(*_scored(batch))
        (logps * weights).sum().backward()
        out[name] = (logps.detach(), _grads(backend))
    torch.testing.assert_close(out["blocks"][0], out["rows"][0], rtol=1e-5, atol=1e-5)
    assert out["blocks"][1].keys() == out["rows"][1].keys()
    # every adapter (A and B of every expert) got a gradient, and the same one
    assert sum("lora_A" in n for n in out["blocks"][1]) == sum("lora_B" in n for n in out["blocks"][1]) > 0
    for name, grad in out["blocks"][1].items():
        torch.testing.assert_close(grad, out["rows"][1][name], rtol=1e-4, atol=1e-6, msg=name)


def test_block_path_is_taken_and_keeps_no_copy_of_the_input(loaded, batch):
    backend = LoraExperts(loaded.model, K, r=4, init_noise=0.05)
    layer = backend._lora_layers[0]
    names = tuple(f"expert_{k}" for k in range(K))
    assert supports_blocks(layer, names)
    calls = []
    original = layer.base_layer.forward
    layer.base_layer.forward = lambda x, *a, **kw: (calls.append(kw), original(x, *a, **kw))[1]
    backend(*_scored(batch))
    assert calls
    assert all("adapter_names" not in kw for kw in calls)
    assert isinstance(backend._routing, BlockRouting)


def test_per_row_routing_for_generation_still_uses_peft(loaded, batch):
    backend = LoraExperts(loaded.model, K, r=4, init_noise=0.05)
    ids, mask, completion = _scored(batch)
    n = ids.shape[0]
    experts = [k % K for k in range(n)]
    with backend.routed_rows(experts) as model, torch.no_grad():
        from mixdpo.logprobs import sequence_logps

        mixed = sequence_logps(model, ids, mask, completion)
    columns = backend(ids, mask, completion).detach()
    torch.testing.assert_close(mixed, columns[torch.arange(n), experts], rtol=1e-5, atol=1e-4)
