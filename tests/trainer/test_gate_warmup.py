"""The gate's warm-up: by default a gate that reads the prompt is held back for the E-step warm-up."""

from __future__ import annotations

import pytest
import torch

from mixdpo.data import build_preference_dataset
from mixdpo.errors import ConfigError
from mixdpo.policy import MixturePolicy
from mixdpo.trainer import MixDPOConfig, MixDPOTrainer


@pytest.mark.parametrize(
    ("gate", "explicit", "want"),
    [("prompt", None, 7), ("prompt+user", None, 7), ("user", None, 0), ("global", None, 0), ("prompt", 0, 0),
     ("user", 4, 4)],
)  # fmt: skip
def test_default_gate_warmup_follows_the_estep_warmup_for_prompt_gates(tmp_path, gate, explicit, want):
    args = MixDPOConfig(output_dir=str(tmp_path), gate=gate, estep_warmup_steps=7, gate_warmup_steps=explicit)
    assert args.resolved_gate_warmup_steps() == want


def test_negative_gate_warmup_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="gate_warmup_steps"):
        MixDPOConfig(output_dir=str(tmp_path), gate_warmup_steps=-1)


@pytest.mark.parametrize("explicit", [None, 0])
def test_prompt_gate_stays_untrained_through_the_estep_warmup(tmp_path, small_task, explicit):
    args = MixDPOConfig(output_dir=str(tmp_path), model="random:llama-tiny", disable_tqdm=True, gate="prompt",
                        estep_warmup_steps=2, gate_warmup_steps=explicit, max_steps=2,
                        per_device_train_batch_size=4, gate_learning_rate=0.1, report_to=[])  # fmt: skip
    policy = MixturePolicy.create(args.policy_config())
    dataset, _ = build_preference_dataset(small_task["train"], policy.tokenizer, args.tokenization_settings())
    before = {n: p.detach().clone() for n, p in policy.gate.named_parameters()}
    trainer = MixDPOTrainer(policy, args, train_dataset=dataset)
    trainer.train()
    unchanged = all(torch.equal(p, before[n]) for n, p in policy.gate.named_parameters())
    if explicit is None:  # held back for the 2 warm-up steps
        assert trainer.schedule().at(1).objective.gate_loss_weight == 0.0
        assert trainer.schedule().at(2).objective.gate_loss_weight == args.gate_loss_weight
        assert unchanged
    else:  # trained from step 0 (the earlier default)
        assert not unchanged
