"""Frozen experts are scored once per dataset; gate-only training then runs no expert forward pass."""

from __future__ import annotations

import pytest
import torch

from mixdpo.batch import POLICY_CHOSEN_LOGPS, POLICY_REJECTED_LOGPS
from mixdpo.data import build_preference_dataset
from mixdpo.logprobs import split_chosen_rejected
from mixdpo.policy import MixturePolicy
from mixdpo.trainer import MixDPOConfig, MixDPOTrainer
from mixdpo.trainer.frozen_experts import FrozenExpertScores


def _setup(tmp_path, small_task, gate="user", **overrides):
    args = MixDPOConfig(output_dir=str(tmp_path), model="random:llama-tiny", disable_tqdm=True, gate=gate,
                        num_experts=2, num_train_epochs=3, per_device_train_batch_size=4,
                        per_device_eval_batch_size=8, gate_learning_rate=0.1, save_strategy="no",
                        report_to=[], **overrides)  # fmt: skip
    dataset, _ = build_preference_dataset(small_task["train"], _tokenizer(args), args.tokenization_settings())
    users = dataset.user_vocab().labels if gate == "user" else ()
    policy = MixturePolicy.create(args.policy_config(), users=users)
    return args, policy, dataset


def _tokenizer(args):
    return MixturePolicy.create(args.policy_config()).tokenizer


def _count_expert_forwards(policy):
    calls = []
    policy.backend.register_forward_hook(lambda *_: calls.append(1))
    return calls


def _train_gate_only(tmp_path, small_task, *, cached: bool, monkeypatch, gate="user"):
    args, policy, dataset = _setup(tmp_path, small_task, gate=gate)
    policy.backend.set_experts_trainable(False)
    if not cached:
        monkeypatch.setattr(FrozenExpertScores, "usable", lambda self: False)
    calls = _count_expert_forwards(policy)
    torch.manual_seed(0)
    trainer = MixDPOTrainer(policy, args, train_dataset=dataset)
    trainer.train()
    if not cached:
        monkeypatch.undo()
    return trainer, policy, len(calls)


@pytest.mark.parametrize("gate", ["user", "prompt"])
def test_gate_only_training_with_cached_experts_matches_running_them(tmp_path, small_task, monkeypatch, gate):
    cached, cached_policy, cached_calls = _train_gate_only(
        tmp_path / "a", small_task, cached=True, monkeypatch=monkeypatch, gate=gate
    )
    plain, plain_policy, plain_calls = _train_gate_only(
        tmp_path / "b", small_task, cached=False, monkeypatch=monkeypatch, gate=gate
    )
    steps = cached.state.global_step
    assert steps == plain.state.global_step == 18  # 24 pairs / 4 x 3 epochs
    # the cached run scored the 24 pairs once (3 batches of 8); the other ran the experts in every step
    assert cached.frozen_experts.passes == 1
    assert cached_calls == 3
    assert plain_calls == steps
    # equal up to float noise (the pass scores batches of 8, training batches of 4: other padding) ...
    gap = max(
        (p - q).abs().max().item()
        for p, q in zip(cached_policy.gate.parameters(), plain_policy.gate.parameters(), strict=True)
    )
    # ... and far from where the gate started: the equality is not two untouched gates
    fresh = MixturePolicy.create(cached.args.policy_config(), users=cached_policy.users)
    moved = max(
        (p - q).abs().max().item()
        for p, q in zip(cached_policy.gate.parameters(), fresh.gate.parameters(), strict=True)
    )
    assert gap < 1e-3
    assert moved > 20 * gap


def test_trainable_experts_are_not_cached(tmp_path, small_task):
    args, policy, dataset = _setup(tmp_path, small_task, max_steps=2)
    trainer = MixDPOTrainer(policy, args, train_dataset=dataset)
    trainer.train()
    assert trainer.frozen_experts.passes == 0
    assert trainer.frozen_experts.active["train"] is None


def test_policy_forward_takes_precomputed_expert_logps(tmp_path, small_task):
    args, policy, dataset = _setup(tmp_path, small_task)
    trainer = MixDPOTrainer(policy, args, train_dataset=dataset)
    batch = trainer.data_collator([dataset[i] for i in range(4)])
    policy.eval()
    with torch.no_grad():
        plain = policy(batch)
        chosen, rejected = split_chosen_rejected(
            policy.backend(batch["input_ids"], batch["attention_mask"], batch["completion_mask"])
        )
        given = policy(batch | {POLICY_CHOSEN_LOGPS: chosen + 1.0, POLICY_REJECTED_LOGPS: rejected - 1.0})
    torch.testing.assert_close(plain.chosen_logps, chosen)
    torch.testing.assert_close(given.chosen_logps, chosen + 1.0)  # taken from the batch, not recomputed
    torch.testing.assert_close(given.rejected_logps, rejected - 1.0)
    torch.testing.assert_close(given.ref_chosen_logps, plain.ref_chosen_logps)
