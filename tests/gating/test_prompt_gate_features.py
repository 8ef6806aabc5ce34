"""The prompt gate's feature standardisation: the formula, why it is there, and old saved gates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mixdpo.gating import GateInputs, PromptGate, PromptUserGate, UserGate


def _lm_like_features(n: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Features shaped like pooled LM hidden states: a large component common to every prompt and a small
    one that tells two domains apart (labels 0 / 1)."""
    g = torch.Generator().manual_seed(seed)
    common = torch.randn(dim, generator=g) * 50.0
    common[:3] = torch.tensor([400.0, -300.0, 250.0])  # a few massive dimensions
    domain = torch.randn(dim, generator=g)
    labels = torch.arange(n) % 2
    scale = 1.0 + 0.3 * torch.randn(n, 1, generator=g)
    feats = (
        scale * common + (labels[:, None] * 2.0 - 1.0) * domain * 0.5 + torch.randn(n, dim, generator=g) * 0.5
    )
    return feats, labels


def test_fit_sets_the_per_feature_mean_and_standard_deviation():
    feats = torch.randn(50, 6) * torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 0.0]) + 7.0
    gate = PromptGate(3, feature_dim=6, hidden_dim=4)
    assert not gate.fitted
    gate.fit_feature_statistics(feats)
    assert gate.fitted
    x = feats.double().numpy()
    np.testing.assert_allclose(gate.feature_mean.numpy(), x.mean(0), rtol=1e-5)
    want_std = x.std(0)
    want_std[5] = 1e-6 * max(want_std.max(), 1.0)  # a constant feature is centred, not blown up
    np.testing.assert_allclose(gate.feature_std.numpy(), want_std, rtol=1e-5)


def test_forward_is_the_mlp_of_the_layer_normalised_standardised_features():
    torch.manual_seed(0)
    feats = torch.randn(20, 5) * 3 + 1
    gate = PromptGate(2, feature_dim=5, hidden_dim=4)
    torch.nn.init.normal_(gate.mlp[-1].weight)
    gate.fit_feature_statistics(feats[:10])
    x = feats[10:].double().numpy()
    fit = feats[:10].double().numpy()
    z = (x - fit.mean(0)) / fit.std(0)
    z = (z - z.mean(1, keepdims=True)) / np.sqrt(z.var(1, keepdims=True) + 1e-5)
    w1, b1 = gate.mlp[0].weight.double().detach().numpy(), gate.mlp[0].bias.double().detach().numpy()
    w2, b2 = gate.mlp[-1].weight.double().detach().numpy(), gate.mlp[-1].bias.double().detach().numpy()
    want = torch.nn.functional.gelu(torch.from_numpy(z @ w1.T + b1)).numpy() @ w2.T + b2
    got = gate(GateInputs(10, prompt_features=feats[10:])).double().detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_unfitted_gate_is_the_layer_norm_gate():
    torch.manual_seed(0)
    gate = PromptGate(2, feature_dim=5, hidden_dim=0)
    torch.nn.init.normal_(gate.mlp[-1].weight)
    feats = torch.randn(4, 5) * 10
    want = gate.mlp(torch.nn.functional.layer_norm(feats, (5,)))
    assert torch.allclose(gate(GateInputs(4, prompt_features=feats)), want)


@pytest.mark.parametrize("fit", [False, True])
def test_standardising_lets_the_gate_read_a_small_difference_beside_a_large_common_component(fit):
    """With the labels given, 40 Adam steps of 8 prompts at the trainer's default gate learning rate: the
    layer norm alone routes every prompt the same way; standardised features route them right."""
    train, train_labels = _lm_like_features(200, 64, seed=1)
    test, test_labels = _lm_like_features(200, 64, seed=1)  # same common component, new noise below
    test = test + torch.randn(test.shape, generator=torch.Generator().manual_seed(2)) * 0.1
    torch.manual_seed(0)
    gate = PromptGate(2, feature_dim=64)
    if fit:
        gate.fit_feature_statistics(train)
    opt = torch.optim.AdamW(gate.parameters(), lr=0.03)
    g = torch.Generator().manual_seed(0)
    for _ in range(40):
        idx = torch.randint(len(train), (8,), generator=g)
        loss = torch.nn.functional.cross_entropy(
            gate(GateInputs(8, prompt_features=train[idx])), train_labels[idx]
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        routed = gate(GateInputs(len(test), prompt_features=test)).argmax(-1)
    accuracy = (routed == test_labels).float().mean().item()
    if fit:
        assert accuracy >= 0.95
    else:
        assert accuracy <= 0.6


def test_fit_refuses_features_of_the_wrong_shape():
    gate = PromptGate(2, feature_dim=4)
    for bad in (torch.randn(1, 4), torch.randn(5, 3), torch.randn(5)):
        with pytest.raises(ValueError, match="to standardise"):
            gate.fit_feature_statistics(bad)


def test_statistics_are_saved_with_the_gate_and_old_gates_load_unfitted():
    gate = PromptUserGate(PromptGate(2, feature_dim=4), UserGate(2, num_users=3))
    gate.prompt.fit_feature_statistics(torch.randn(10, 4) * 5 + 2)
    state = gate.state_dict()
    assert {"prompt.feature_mean", "prompt.feature_std", "prompt.features_fitted"} <= set(state)
    again = PromptUserGate(PromptGate(2, feature_dim=4), UserGate(2, num_users=3))
    again.load_state_dict(state)
    assert again.prompt.fitted
    assert torch.equal(again.prompt.feature_std, gate.prompt.feature_std)

    old = {k: v for k, v in state.items() if "feature" not in k}  # saved before the statistics existed
    loaded = PromptUserGate(PromptGate(2, feature_dim=4), UserGate(2, num_users=3))
    loaded.load_state_dict(old)  # strict: no missing-key error
    assert torch.equal(loaded.prompt.feature_mean, torch.zeros(4))
    assert torch.equal(loaded.prompt.feature_std, torch.ones(4))
    assert loaded.prompt.fitted  # it learned on raw features: a trainer must not standardise them now
