"""The trainer standardises a prompt gate's features on the training prompts before the first step."""

from __future__ import annotations

import pytest
import torch

from mixdpo.data import build_preference_dataset
from mixdpo.policy import MixturePolicy
from mixdpo.trainer import MixDPOConfig, MixDPOTrainer


def _trainer(tmp_path, path, policy=None, **options):
    args = MixDPOConfig(output_dir=str(tmp_path), model="random:llama-tiny", disable_tqdm=True, max_steps=1,
                        per_device_train_batch_size=4, report_to=[], **options)  # fmt: skip
    policy = policy or MixturePolicy.create(args.policy_config())
    dataset, _ = build_preference_dataset(path, policy.tokenizer, args.tokenization_settings())
    return MixDPOTrainer(policy, args, train_dataset=dataset), policy, dataset


def _one_by_one(policy, dataset) -> torch.Tensor:
    """[N, H] features of each training prompt on its own (no batching, no padding)."""
    with torch.no_grad():
        rows = [torch.tensor([dataset[i]["prompt_ids"]]) for i in range(len(dataset))]
        return torch.cat([policy.backend.prompt_features(ids, torch.ones_like(ids)) for ids in rows])


@pytest.mark.parametrize("precompute", [True, False])
@pytest.mark.parametrize("gate", ["prompt", "prompt+user"])
def test_training_fits_the_statistics_of_the_training_prompts(tmp_path, small_task, precompute, gate):
    trainer, policy, dataset = _trainer(tmp_path, small_task["train"], gate=gate,
                                        precompute_ref_log_probs=precompute)  # fmt: skip
    prompt_gate = policy.gate if gate == "prompt" else policy.gate.prompt
    assert not prompt_gate.fitted
    trainer.train()
    assert prompt_gate.fitted
    want = _one_by_one(policy, dataset).double()
    torch.testing.assert_close(prompt_gate.feature_mean.double(), want.mean(0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        prompt_gate.feature_std.double(), want.std(0, unbiased=False), rtol=1e-3, atol=1e-5
    )

    # saved and loaded with the policy
    policy.save_pretrained(tmp_path / "policy")
    loaded = MixturePolicy.from_pretrained(tmp_path / "policy")
    loaded_gate = loaded.gate if gate == "prompt" else loaded.gate.prompt
    assert loaded_gate.fitted
    assert torch.equal(loaded_gate.feature_mean, prompt_gate.feature_mean)


def test_a_fitted_gate_keeps_its_statistics_when_trained_further(tmp_path, small_task):
    trainer, policy, _ = _trainer(tmp_path / "a", small_task["train"], gate="prompt")
    trainer.train()
    mean = policy.gate.feature_mean.clone()
    more, _, _ = _trainer(tmp_path / "b", small_task["eval"], policy=policy, gate="prompt")
    more.train()
    assert torch.equal(policy.gate.feature_mean, mean)
