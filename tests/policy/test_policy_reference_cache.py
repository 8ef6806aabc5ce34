"""Reference log-probs (and prompt-gate features) are computed once per dataset and cached on disk: a
second epoch, and a second run, do no reference forward passes."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import DataLoader

from mixdpo.data import PreferenceCollator, TokenizationSettings, build_preference_dataset
from mixdpo.policy import MixturePolicy, PolicyConfig
from mixdpo.reference import ReferenceCache, attach_reference

ROWS = [
    {
        "prompt": f"Review {i}:",
        "chosen": " fine and warm" * (1 + i % 3),
        "rejected": " cold",
        "user_id": f"u{i % 4}",
    }
    for i in range(12)
]


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


class Counter:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


def setup(data_file, backend):
    config = PolicyConfig(model="random:llama-tiny", num_experts=2, backend=backend, gate="prompt")
    policy = MixturePolicy.create(config)
    settings = TokenizationSettings(max_length=64)
    dataset, _ = build_preference_dataset(data_file, policy.tokenizer, settings)
    loader = DataLoader(dataset, batch_size=5, collate_fn=PreferenceCollator.from_tokenizer(policy.tokenizer))
    policy.backend.reference_logps = Counter(policy.backend.reference_logps)
    policy.backend.prompt_features = Counter(policy.backend.prompt_features)
    return policy, dataset, settings, loader


@pytest.mark.parametrize("backend", ["lora", "heads", "independent"])
def test_second_epoch_and_second_run_do_no_reference_forward(tmp_path, data_file, backend):
    policy, dataset, settings, loader = setup(data_file, backend)
    cache = ReferenceCache(tmp_path / "cache")
    key = policy.reference_key(dataset.fingerprint, settings.to_dict())
    table = cache.get_or_compute(
        key, policy.reference_score_fn(), lambda: loader, len(dataset), require_prompt_features=True
    )
    assert policy.backend.reference_logps.calls == 3  # 12 examples / batch 5: one pass over the data
    assert table.chosen.shape == (12, 1)
    assert table.prompt_features.shape == (12, policy.backend.feature_dim)

    # The cached values are the live reference values.
    policy.eval()
    batch = next(iter(loader))
    with torch.no_grad():
        live = policy(batch)
        cached = policy(attach_reference(batch, table))
    torch.testing.assert_close(live.ref_chosen_logps, cached.ref_chosen_logps)
    torch.testing.assert_close(live.gate_logits, cached.gate_logits)

    # "Epoch 2": training batches with the table attached run no reference and no feature forward.
    policy.train()
    before = (policy.backend.reference_logps.calls, policy.backend.prompt_features.calls)
    for batch in loader:
        out = policy(attach_reference(batch, table))
        out.chosen_logps.sum().backward()
    assert (policy.backend.reference_logps.calls, policy.backend.prompt_features.calls) == before

    # A second run (new policy object, new cache object, same directory): a cache hit, zero passes.
    policy2, dataset2, settings2, loader2 = setup(data_file, backend)
    cache2 = ReferenceCache(tmp_path / "cache")
    key2 = policy2.reference_key(dataset2.fingerprint, settings2.to_dict())
    assert key2 == key
    table2 = cache2.get_or_compute(
        key2, policy2.reference_score_fn(), lambda: loader2, len(dataset2), require_prompt_features=True
    )
    assert policy2.backend.reference_logps.calls == 0
    assert cache2.stats.cache_hits == 1
    assert cache2.stats.forward_batches == 0
    assert torch.equal(table2.chosen, table.chosen)


def test_changing_tokenisation_or_reference_changes_the_key(data_file):
    policy, dataset, settings, _ = setup(data_file, "lora")
    key = policy.reference_key(dataset.fingerprint, settings.to_dict())
    assert policy.reference_key(dataset.fingerprint, {**settings.to_dict(), "max_length": 32}) != key
    other = MixturePolicy.create(
        PolicyConfig(model="random:llama-tiny", num_experts=2, gate="prompt", seed=1)
    )
    assert other.reference_key(dataset.fingerprint, settings.to_dict()) != key
