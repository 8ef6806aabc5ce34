"""Activation checkpointing of a mixture policy: same loss and gradients, blocks really recomputed, and the
Trainer switch (``activation_checkpointing=True``) reaches every backend."""

from __future__ import annotations

import pytest
import torch

from helpers import CHOSEN, PROMPTS, REJECTED, encode_pairs
from mixdpo.bench.work import decoder_blocks
from mixdpo.objective import ObjectiveConfig, mix_dpo_objective
from mixdpo.policy import MixturePolicy, PolicyConfig

OPTIONS = {"lora": {"r": 4}, "heads": {"num_expert_layers": 1}, "independent": {}}


def _policy(backend: str, model: str) -> MixturePolicy:
    config = PolicyConfig(model=model, num_experts=2, backend=backend, backend_options=OPTIONS[backend])
    return MixturePolicy.create(config).train()


def _step(policy: MixturePolicy, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    policy.zero_grad(set_to_none=True)
    out = policy(batch)
    result = mix_dpo_objective(
        out.chosen_logps, out.rejected_logps, out.ref_chosen_logps, out.ref_rejected_logps,
        out.gate_logits, ObjectiveConfig(),
    )  # fmt: skip
    result.loss.total.backward()
    grads = {n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None}
    return result.loss.total.detach(), grads


@pytest.mark.parametrize("backend", ["lora", "heads", "independent"])
@pytest.mark.parametrize("model", ["random:gpt2-tiny", "random:llama-tiny"])
def test_checkpointing_gives_the_same_loss_and_gradients(backend, model):
    policy = _policy(backend, model)
    for module in policy.modules():  # dropout would differ between the two runs
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    batch = encode_pairs(policy.tokenizer, PROMPTS, CHOSEN, REJECTED)
    loss, grads = _step(policy, batch)

    calls = []
    for block in decoder_blocks(policy):
        # the block's own hooks stay outside the checkpoint; its MLP's run again in the recompute
        block.mlp.register_forward_pre_hook(lambda *a: calls.append(torch.is_grad_enabled()))
    _step(policy, batch)
    plain_calls = len(calls)
    calls.clear()
    policy.activation_checkpointing_enable()
    loss_ckpt, grads_ckpt = _step(policy, batch)
    # the blocks that ran with autograd ran again during backward
    assert len(calls) > plain_calls
    torch.testing.assert_close(loss_ckpt, loss)
    assert grads_ckpt.keys() == grads.keys()
    assert grads
    for name, grad in grads.items():
        torch.testing.assert_close(grads_ckpt[name], grad, rtol=1e-5, atol=1e-7, msg=name)
    policy.activation_checkpointing_disable()
    calls.clear()
    _step(policy, batch)
    assert len(calls) == plain_calls


def test_every_n_layers_checkpoints_a_subset():
    from mixdpo.policy.checkpointing import enable_block_checkpointing

    policy = _policy("independent", "random:llama-small")  # 2 experts + reference: 3 x 4 blocks
    blocks = decoder_blocks(policy)
    assert enable_block_checkpointing(policy) == len(blocks)
    assert enable_block_checkpointing(policy, every_n_layers=2) == (len(blocks) + 1) // 2
    assert sum(b.gradient_checkpointing for b in blocks) == (len(blocks) + 1) // 2
    with pytest.raises(ValueError, match="every_n_layers"):
        enable_block_checkpointing(policy, every_n_layers=0)
