"""The three expert backends: [N, K] log-probs in one forward, references, gradients, symmetry breaking."""

from __future__ import annotations

import copy

import pytest
import torch

from helpers import CHOSEN, PROMPTS, REJECTED, encode_pairs
from mixdpo.errors import ConfigError
from mixdpo.experts import HeadsExperts, IndependentExperts, LoraExperts
from mixdpo.logprobs import sequence_logps

K = 3


def make(kind: str, model, k: int = K, noise: float = 0.05):
    if kind == "lora":
        return LoraExperts(model, k, r=4, init_noise=noise)
    if kind == "heads":
        return HeadsExperts(model, k, num_expert_layers=1, init_noise=noise)
    return IndependentExperts.from_checkpoint(model, k, init_noise=noise)


def scored(batch):
    return batch["input_ids"], batch["attention_mask"], batch["completion_mask"]


@pytest.mark.parametrize("kind", ["lora", "heads", "independent"])
def test_each_column_is_that_expert_as_a_standalone_model(kind, loaded, batch):
    backend = make(kind, loaded.model)
    logps = backend(*scored(batch))
    assert logps.shape == (batch["input_ids"].shape[0], K)
    for k in range(K):
        with backend.use_expert(k) as model, torch.no_grad():
            alone = sequence_logps(model, *scored(batch))
        torch.testing.assert_close(logps[:, k].detach(), alone, rtol=1e-5, atol=1e-4)
    # Symmetry breaking made the experts different.
    assert (logps[:, 0] - logps[:, 1]).abs().max() > 1e-4


@pytest.mark.parametrize("kind", ["lora", "heads", "independent"])
def test_reference_is_the_unmodified_base(kind, loaded, batch):
    original = copy.deepcopy(loaded.model).eval()
    with torch.no_grad():
        want = sequence_logps(original, *scored(batch))
    backend = make(kind, loaded.model)
    ref = backend.reference_logps(*scored(batch))
    assert ref.shape == (batch["input_ids"].shape[0], 1)
    assert not ref.requires_grad
    torch.testing.assert_close(ref[:, 0], want, rtol=1e-5, atol=1e-4)
    with backend.use_expert(None) as model, torch.no_grad():
        torch.testing.assert_close(sequence_logps(model, *scored(batch)), want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("kind", ["lora", "heads", "independent"])
def test_without_noise_all_experts_equal_the_base(kind, loaded, batch):
    original = copy.deepcopy(loaded.model).eval()
    with torch.no_grad():
        want = sequence_logps(original, *scored(batch))
    backend = make(kind, loaded.model, noise=0.0)
    logps = backend(*scored(batch)).detach()
    for k in range(K):
        torch.testing.assert_close(logps[:, k], want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("kind", ["lora", "heads", "independent"])
def test_gradients_reach_every_expert_and_never_the_frozen_base(kind, loaded, batch):
    backend = make(kind, loaded.model)
    backend.reference_logps(*scored(batch))  # (PEFT re-freezes inactive adapters on re-enabling them)
    with backend.use_expert(None), backend.use_expert(1):
        pass
    backend(*scored(batch)).sum().backward()
    for k in range(K):
        grads = [p.grad for p in backend.expert_parameters(k)]
        assert grads
        assert all(g is not None for g in grads)
        assert sum(g.abs().sum().item() for g in grads) > 0
    if kind != "independent":
        expert_ids = {id(p) for k in range(K) for p in backend.expert_parameters(k)}
        frozen = [p for p in backend.parameters() if id(p) not in expert_ids]
        assert frozen
        assert all(not p.requires_grad and p.grad is None for p in frozen)


@pytest.mark.parametrize("kind", ["lora", "heads", "independent"])
def test_symmetry_noise_is_seeded(kind, loaded):
    def expert_state(seed):
        model = copy.deepcopy(loaded.model)
        if kind == "lora":
            backend = LoraExperts(model, 2, r=4, init_noise=0.05, seed=seed)
        elif kind == "heads":
            backend = HeadsExperts(model, 2, num_expert_layers=1, init_noise=0.05, seed=seed)
        else:
            backend = IndependentExperts.from_checkpoint(model, 2, init_noise=0.05, seed=seed)
        return [torch.cat([p.detach().flatten() for p in backend.expert_parameters(k)]) for k in range(2)]

    torch.manual_seed(123)  # PEFT draws LoRA A from the global RNG: fix it so only our seed varies
    a = expert_state(1)
    torch.manual_seed(123)
    b = expert_state(1)
    torch.manual_seed(123)
    c = expert_state(2)
    assert torch.equal(a[0], b[0])
    assert torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    assert not torch.equal(a[0], a[1])


def test_lora_runs_all_experts_in_one_base_forward_and_holds_one_base_copy(loaded, batch):
    base_params = {id(p): p.numel() for p in loaded.model.parameters()}
    base_bytes = sum(p.numel() * p.element_size() for p in loaded.model.parameters())
    backend = LoraExperts(loaded.model, 4, r=4)
    decoder = backend.model.get_base_model().get_decoder()
    calls = []
    decoder.register_forward_hook(lambda module, args, out: calls.append(out[0].shape[0]))
    backend(*scored(batch))
    n = batch["input_ids"].shape[0]
    assert calls == [4 * n]  # one decoder pass over the K-times repeated batch
    # The base weights are the same tensors (not copies); only adapters were added.
    ids = {id(p) for p in backend.parameters() if not p.requires_grad}
    assert ids == set(base_params)
    adapter = sum(p.numel() * p.element_size() for p in backend.parameters() if p.requires_grad)
    one = sum(p.numel() * p.element_size() for p in backend.expert_parameters(0))
    assert adapter == 4 * one
    total = sum(p.numel() * p.element_size() for p in backend.parameters())
    assert total == base_bytes + adapter


def test_heads_runs_the_trunk_once_and_each_top_once_per_expert(loaded, batch):
    backend = HeadsExperts(loaded.model, 4, num_expert_layers=1)
    trunk_first = backend._trunk.get_submodule(backend.arch.blocks)[0]
    trunk_calls, top_calls = [], []
    trunk_first.register_forward_hook(lambda *a: trunk_calls.append(1))
    for k in range(4):
        backend.expert_blocks[k][0].register_forward_hook(lambda *a, k=k: top_calls.append(k))
    logps, ref = backend.forward_with_reference(*scored(batch))
    assert len(trunk_calls) == 1
    assert top_calls == [0, 1, 2, 3]
    assert logps.shape == (batch["input_ids"].shape[0], 4)
    assert ref.shape == (batch["input_ids"].shape[0], 1)


def test_heads_trunk_is_not_recorded_by_autograd_when_frozen(loaded, batch):
    backend = HeadsExperts(loaded.model, 2, num_expert_layers=1)
    hidden, _, _ = backend._run_trunk(batch["input_ids"], batch["attention_mask"])
    assert not hidden.requires_grad


def test_heads_left_and_right_padding_agree(loaded):
    backend = HeadsExperts(loaded.model, 2, num_expert_layers=1)
    right = encode_pairs(loaded.tokenizer, PROMPTS, CHOSEN, REJECTED, padding_side="right")
    left = encode_pairs(loaded.tokenizer, PROMPTS, CHOSEN, REJECTED, padding_side="left")
    with torch.no_grad():
        torch.testing.assert_close(backend(*scored(right)), backend(*scored(left)), rtol=1e-5, atol=1e-4)


def test_heads_trainable_trunk_keeps_a_frozen_reference(loaded, batch):
    original = copy.deepcopy(loaded.model).eval()
    backend = HeadsExperts(loaded.model, 2, num_expert_layers=1, trunk_trainable=True)
    shared = list(backend.shared_parameters())
    assert shared
    assert all(p.requires_grad for p in shared)
    backend(*scored(batch)).sum().backward()
    assert all(p.grad is not None for p in shared)
    with torch.no_grad():
        for p in shared:
            p.add_(1.0)  # the trunk moves; the reference must not
        want = sequence_logps(original, *scored(batch))
    torch.testing.assert_close(backend.reference_logps(*scored(batch))[:, 0], want, rtol=1e-5, atol=1e-4)


def test_heads_errors_say_what_to_change(loaded):
    with pytest.raises(ConfigError, match="num_expert_layers"):
        HeadsExperts(loaded.model, 2, num_expert_layers=2)  # tiny presets have 2 blocks
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    other = GPTNeoXForCausalLM(
        GPTNeoXConfig(
            vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
        )
    )
    with pytest.raises(ConfigError, match="use backend 'lora' or 'independent'"):
        HeadsExperts(other, 2)


def test_independent_per_expert_references(loaded, batch):
    backend = IndependentExperts.from_checkpoint(loaded.model, 3, per_expert_references=True)
    assert backend.num_reference_columns == 3
    ref = backend.reference_logps(*scored(batch))
    assert ref.shape == (batch["input_ids"].shape[0], 3)
    torch.testing.assert_close(ref[:, 0], ref[:, 2])
