"""On the real SmolLM2-135M-Instruct (slow): a LoRA mixture trains with MixDPOTrainer, saves and reloads bit
for bit, scores, and generates readable text with every routing."""

from __future__ import annotations

import pytest
import torch

from mixdpo.data import PreferenceCollator, build_preference_dataset
from mixdpo.policy import MixturePolicy
from mixdpo.tasks import write_task
from mixdpo.trainer import MixDPOConfig, MixDPOTrainer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("smol")
    files = write_task(
        "reviews-users", out / "data", format="text", train_pairs=24, eval_pairs=12, new_user_pairs=12
    )
    args = MixDPOConfig(
        output_dir=str(out / "run"), model="builtin:smollm2-135m", num_experts=2, gate="user",
        lora_top_layers=2, beta=1.0, learning_rate=2e-3, gate_learning_rate=0.3, max_steps=6,
        per_device_train_batch_size=4, estep_warmup_steps=3, disable_tqdm=True,
        reference_cache_dir=str(out / "cache"),
    )  # fmt: skip
    base_users = sorted({f"user_{i:02d}" for i in range(12)})
    policy = MixturePolicy.create(args.policy_config(), users=base_users)
    dataset, _ = build_preference_dataset(files["train"], policy.tokenizer, args.tokenization_settings())
    trainer = MixDPOTrainer(policy, args, train_dataset=dataset)
    trainer.train()
    policy.save_pretrained(out / "policy")
    return policy, dataset, out


def test_training_moved_the_experts_apart(trained):
    policy, dataset, _ = trained
    batch = PreferenceCollator.from_tokenizer(policy.tokenizer)([dataset[i] for i in range(8)])
    policy.eval()
    with torch.no_grad():
        out = policy(batch)
    assert not torch.allclose(out.chosen_logps[:, 0], out.chosen_logps[:, 1], atol=1e-3)


def test_round_trip_is_bit_exact(trained):
    policy, dataset, out = trained
    batch = PreferenceCollator.from_tokenizer(policy.tokenizer)([dataset[i] for i in range(4)])
    batch["user_ids"] = policy.user_ids(["user_00", "user_05", None, "user_11"])
    loaded = MixturePolicy.from_pretrained(out / "policy")
    policy.eval()
    with torch.no_grad():
        a, b = policy(batch), loaded(batch)
    assert torch.equal(a.chosen_logps, b.chosen_logps)
    assert torch.equal(a.gate_logits, b.gate_logits)


@pytest.mark.parametrize("routing", ["sample", "top1", "expert:1", "token-mixture"])
def test_generation_writes_words(trained, routing):
    policy, _, _ = trained
    prompt = [{"role": "user", "content": "Give me a one-line review of the movie Dune."}]
    result = policy.generate([prompt], users=["user_00"], routing=routing, max_new_tokens=16, do_sample=False)
    text = result.texts[0]
    words = [w for w in text.split() if w.isalpha()]
    assert len(words) >= 3, text
