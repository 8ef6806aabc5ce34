"""With one expert, MixDPOTrainer's loss and gradients are plain DPO's, checked against an independent
computation (full-vocabulary log-softmax of each model's logits, the DPO formula by hand)."""

from __future__ import annotations

import math

import pytest
import torch

from mixdpo.data import PreferenceCollator, build_preference_dataset
from mixdpo.policy import MixturePolicy
from mixdpo.trainer import MixDPOConfig, MixDPOTrainer


def full_logps(model, batch) -> torch.Tensor:
    """sum over completion tokens of log softmax(logits[t-1])[token t], right padding, no tricks."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, batch["input_ids"][:, 1:, None])[..., 0]
    return (logp * batch["completion_mask"][:, 1:]).sum(-1)


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo", "hinge"])
def test_k1_loss_and_gradient_equal_dpo(tmp_path, small_task, loss_type):
    args = MixDPOConfig(
        output_dir=str(tmp_path), model="random:llama-tiny", num_experts=1, backend="independent",
        init_noise=0.05, beta=0.3, loss_type=loss_type, precompute_ref_log_probs=False, disable_tqdm=True,
    )  # fmt: skip
    policy = MixturePolicy.create(args.policy_config()).double()  # float64: compare to 1e-9, not to noise
    dataset, _ = build_preference_dataset(small_task["train"], policy.tokenizer, args.tokenization_settings())
    trainer = MixDPOTrainer(policy, args, train_dataset=dataset)
    batch = PreferenceCollator.from_tokenizer(policy.tokenizer)([dataset[i] for i in range(6)])
    policy.train()
    loss = trainer.compute_loss(policy, batch)
    (grad,) = torch.autograd.grad(loss, [policy.backend.experts[0].lm_head.weight])

    expert, reference = policy.backend.experts[0], policy.backend.references[0]
    pi = full_logps(expert, batch)
    with torch.no_grad():
        ref = full_logps(reference, batch)
    b = 6
    h = (pi[:b] - ref[:b]) - (pi[b:] - ref[b:])
    if loss_type == "sigmoid":
        want = -torch.nn.functional.logsigmoid(0.3 * h).mean()
    elif loss_type == "ipo":
        want = ((h - 1 / (2 * 0.3)) ** 2).mean()
    else:
        want = torch.relu(1 - 0.3 * h).mean()
    (want_grad,) = torch.autograd.grad(want, [expert.lm_head.weight])
    assert loss.item() == pytest.approx(want.item(), rel=1e-10)
    torch.testing.assert_close(grad, want_grad, rtol=1e-7, atol=1e-12)
    if loss_type == "sigmoid":  # and the metrics are TRL's
        assert math.isclose(
            trainer._metrics["train"]["rewards/accuracies"][-1], ((0.3 * h) > 0).float().mean().item()
        )
