"""Gates: shapes, uniform start, the unknown-user fallback, personalisation rows, closed-form weights."""

from __future__ import annotations

import pytest
import torch

from mixdpo.batch import UNKNOWN_USER
from mixdpo.gating import (
    GateInputs,
    GlobalGate,
    PromptGate,
    PromptUserGate,
    UserGate,
    build_gate,
    gate_from_config,
    sparsify_top_k,
)
from mixdpo.objective import gate_log_weights, robbins_monro_update


def test_global_learned_gate_starts_uniform_and_is_a_parameter():
    gate = GlobalGate(4)
    logits = gate(GateInputs(batch_size=3))
    assert logits.shape == (4,)
    assert torch.allclose(torch.softmax(logits, -1), torch.full((4,), 0.25))
    assert [n for n, _ in gate.named_parameters()] == ["logits"]


def test_global_closed_form_gate_follows_robbins_monro_and_has_no_parameters():
    gate = GlobalGate(2, mode="closed_form")
    assert list(gate.parameters()) == []
    q = torch.tensor([[0.9, 0.1], [0.7, 0.3]])
    gate.update(q, step_size=0.5)
    want = robbins_monro_update(torch.tensor([0.5, 0.5]), q, 0.5)
    assert torch.allclose(torch.softmax(gate(), -1), want)
    with pytest.raises(RuntimeError, match="closed_form"):
        GlobalGate(2).update(q, 0.5)


def test_prompt_gate_starts_uniform_then_learns_to_separate_two_clusters():
    torch.manual_seed(0)
    gate = PromptGate(2, feature_dim=8, hidden_dim=16)
    feats = torch.cat([torch.randn(32, 8) + 3.0, torch.randn(32, 8) - 3.0])
    target = torch.cat([torch.zeros(32), torch.ones(32)]).long()
    inputs = GateInputs(64, prompt_features=feats)
    assert torch.allclose(torch.softmax(gate(inputs), -1), torch.full((64, 2), 0.5))
    opt = torch.optim.Adam(gate.parameters(), lr=0.05)
    for _ in range(50):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(gate(inputs), target)
        loss.backward()
        opt.step()
    assert (gate(inputs).argmax(-1) == target).float().mean() == 1.0
    with pytest.raises(ValueError, match="prompt features"):
        gate(GateInputs(2))


def test_user_gate_unknown_users_use_the_learned_fallback_row():
    gate = UserGate(3, num_users=2, user_dropout=0.0)
    with torch.no_grad():
        gate.table.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]))
    logits = gate(GateInputs(4, user_ids=torch.tensor([0, 1, UNKNOWN_USER, 7])))
    assert logits.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]]
    # No user ids at all: everyone is unknown.
    assert gate(GateInputs(2)).tolist() == [[0, 0, 1], [0, 0, 1]]


def test_user_dropout_trains_the_fallback_only_in_training_mode():
    gate = UserGate(2, num_users=1, user_dropout=0.5)
    ids = torch.zeros(4000, dtype=torch.long)
    gate.train()
    torch.manual_seed(0)
    rows = gate.rows_for(ids)
    assert 0.45 < (rows == gate.fallback_index).float().mean() < 0.55
    gate.eval()
    assert (gate.rows_for(ids) == 0).all()


def test_add_users_appends_rows_initialised_from_the_fallback():
    gate = UserGate(2, num_users=2, user_dropout=0.0)
    with torch.no_grad():
        gate.table.weight.copy_(torch.tensor([[1.0, 0], [0, 1.0], [0.3, 0.7]]))
    gate.add_users(2)
    assert gate.num_users == 4
    torch.testing.assert_close(
        gate.table.weight.detach(), torch.tensor([[1.0, 0], [0, 1.0], [0.3, 0.7], [0.3, 0.7], [0.3, 0.7]])
    )
    assert gate.table.weight.requires_grad
    assert gate(GateInputs(1, user_ids=torch.tensor([3])))[0].tolist() == pytest.approx([0.3, 0.7])


def test_user_features_enter_linearly():
    gate = UserGate(2, num_users=0, num_user_features=3, user_dropout=0.0)
    with torch.no_grad():
        gate.features.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 0, 2.0]]))
    out = gate(GateInputs(1, user_features=torch.tensor([[5.0, 1.0, 1.0]])))
    assert out.tolist() == [[5.0, 2.0]]
    with pytest.raises(ValueError, match="numeric user features"):
        gate(GateInputs(1))


def test_prompt_user_gate_sums_logits():
    prompt = PromptGate(2, feature_dim=4, hidden_dim=0)
    user = UserGate(2, num_users=1, user_dropout=0.0)
    with torch.no_grad():
        prompt.mlp[-1].bias.copy_(torch.tensor([1.0, 2.0]))
        user.table.weight.copy_(torch.tensor([[10.0, 0.0], [0.0, 0.0]]))
    gate = PromptUserGate(prompt, user)
    out = gate(GateInputs(2, prompt_features=torch.randn(2, 4), user_ids=torch.tensor([0, -1])))
    assert out.tolist() == [[11.0, 2.0], [1.0, 2.0]]


def test_sparsify_top_k_renormalises_over_kept_experts():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0]])
    kept = sparsify_top_k(logits, 2)
    w = torch.softmax(kept, -1)
    assert w[0, 0] == 0
    assert w[0, 3] == 0
    e3, e2 = torch.exp(torch.tensor(3.0)), torch.exp(torch.tensor(2.0))
    assert w[0, 1].item() == pytest.approx((e3 / (e3 + e2)).item())
    assert torch.equal(sparsify_top_k(logits, None), logits)
    # -inf weights stay finite through the objective's log-weights.
    assert torch.isneginf(gate_log_weights(kept)[0, 0])


@pytest.mark.parametrize("kind", ["global", "prompt", "user", "prompt+user"])
def test_config_round_trip_rebuilds_the_same_gate(kind):
    torch.manual_seed(0)
    gate = build_gate(kind, 3, feature_dim=5, num_users=4, num_user_features=2)
    for p in gate.parameters():
        torch.nn.init.normal_(p)
    clone = gate_from_config(gate.config())
    clone.load_state_dict(gate.state_dict())
    inputs = GateInputs(2, torch.randn(2, 5), torch.tensor([1, -1]), torch.randn(2, 2))
    gate.eval()
    clone.eval()
    assert torch.equal(gate(inputs), clone(inputs))


def test_bad_gate_kind():
    with pytest.raises(ValueError, match="unknown gate kind"):
        build_gate("attention", 2)
    with pytest.raises(ValueError, match="feature_dim"):
        build_gate("prompt", 2)
