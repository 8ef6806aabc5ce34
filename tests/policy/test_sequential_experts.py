"""``sequential_experts``: the experts' backward one expert at a time gives the joint step's loss and
gradients (every objective, with and without activation checkpointing), and no forward with autograd ever
sees more than one expert's rows."""

from __future__ import annotations

import pytest
import torch

from helpers import CHOSEN, PROMPTS, REJECTED, encode_pairs
from mixdpo.bench.work import decoder_blocks
from mixdpo.errors import MixDPOError
from mixdpo.objective import ObjectiveConfig, mix_dpo_objective
from mixdpo.policy import MixturePolicy, PolicyConfig

CASES = {
    "lora": ("lora", {"r": 4}, "random:llama-tiny", 3),
    "lora-top-layers": ("lora", {"r": 4, "top_layers": 1}, "random:llama-tiny", 3),
    "lora-k1": ("lora", {"r": 4}, "random:gpt2-tiny", 1),
    "independent": ("independent", {}, "random:gpt2-tiny", 2),
}


def _policy(case: str, gate: str = "global") -> MixturePolicy:
    backend, options, model, k = CASES[case]
    config = PolicyConfig(model=model, num_experts=k, backend=backend, backend_options=options, gate=gate)
    policy = MixturePolicy.create(config).train()
    for module in policy.modules():  # the two passes would draw different dropout masks
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return policy


def _step(policy: MixturePolicy, batch, objective: ObjectiveConfig):
    policy.zero_grad(set_to_none=True)
    torch.manual_seed(0)  # the same Gumbel noise in both runs
    out = policy(batch)
    result = mix_dpo_objective(
        out.chosen_logps, out.rejected_logps, out.ref_chosen_logps, out.ref_rejected_logps,
        out.gate_logits, objective,
    )  # fmt: skip
    result.loss.total.backward()
    grads = {n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None}
    return result.loss.total.detach(), result.q, grads


OBJECTIVES = {
    "em-soft": ObjectiveConfig(),
    "em-gumbel": ObjectiveConfig(estep="gumbel", estep_temperature=0.7),
    "marginal": ObjectiveConfig(objective="marginal"),
    "ipo": ObjectiveConfig(loss_type="ipo"),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("objective", list(OBJECTIVES))
def test_sequential_gives_the_joint_loss_and_gradients(case, objective):
    policy = _policy(case, gate="prompt" if case == "lora" else "global")
    batch = encode_pairs(policy.tokenizer, PROMPTS, CHOSEN, REJECTED)
    loss, q, grads = _step(policy, batch, OBJECTIVES[objective])
    policy.sequential_experts_enable()
    loss_seq, q_seq, grads_seq = _step(policy, batch, OBJECTIVES[objective])
    torch.testing.assert_close(loss_seq, loss)
    torch.testing.assert_close(q_seq, q)
    assert grads
    assert grads_seq.keys() == grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grads_seq[name], grad, rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.parametrize("case", ["lora", "independent"])
def test_sequential_with_activation_checkpointing(case):
    policy = _policy(case)
    batch = encode_pairs(policy.tokenizer, PROMPTS, CHOSEN, REJECTED)
    loss, _, grads = _step(policy, batch, ObjectiveConfig())
    policy.sequential_experts_enable()
    policy.activation_checkpointing_enable()
    loss_seq, _, grads_seq = _step(policy, batch, ObjectiveConfig())
    torch.testing.assert_close(loss_seq, loss)
    for name, grad in grads.items():
        torch.testing.assert_close(grads_seq[name], grad, rtol=1e-5, atol=1e-7, msg=name)


def test_lora_autograd_forwards_see_one_expert_of_rows():
    policy = _policy("lora")
    batch = encode_pairs(policy.tokenizer, PROMPTS, CHOSEN, REJECTED)
    n, k = batch["input_ids"].shape[0], policy.num_experts
    seen: list[tuple[int, bool]] = []
    for block in decoder_blocks(policy.backend.model):
        block.mlp.register_forward_pre_hook(
            lambda m, a: seen.append((a[0].shape[0], torch.is_grad_enabled()))
        )
    _step(policy, batch, ObjectiveConfig())
    assert {rows for rows, grad in seen if grad} == {k * n}  # joint: all experts in one graph
    seen.clear()
    policy.sequential_experts_enable()
    _step(policy, batch, ObjectiveConfig())
    assert {rows for rows, grad in seen if grad} == {n}
    assert {rows for rows, grad in seen if not grad} == {n}  # the E-step pass too, one expert at a time
    # every expert ran once without autograd (E-step) and once with it (its backward) per block; the
    # reference (adapters off) once without
    blocks = len(decoder_blocks(policy.backend.model))
    assert sum(grad for _, grad in seen) == k * blocks
    assert sum(not grad for _, grad in seen) == (k + 1) * blocks


def test_eval_and_no_grad_forwards_are_unchanged():
    policy = _policy("independent")
    batch = encode_pairs(policy.tokenizer, PROMPTS, CHOSEN, REJECTED)
    with torch.no_grad():
        plain = policy(batch).chosen_logps
        policy.sequential_experts_enable()
        torch.testing.assert_close(policy(batch).chosen_logps, plain)
    policy.eval()
    assert not policy(batch).chosen_logps.grad_fn.__class__.__name__.startswith("_Sequential")


def test_heads_is_refused_with_the_reason():
    config = PolicyConfig(
        model="random:gpt2-tiny", num_experts=2, backend="heads", backend_options={"num_expert_layers": 1}
    )
    policy = MixturePolicy.create(config)
    with pytest.raises(MixDPOError, match="heads already shares the trunk"):
        policy.sequential_experts_enable()
    policy.sequential_experts_enable(False)


def test_backward_replays_the_forward_autocast_state():
    policy = _policy("lora")
    batch = encode_pairs(policy.tokenizer, PROMPTS, CHOSEN, REJECTED)
    dtypes: list[torch.dtype] = []
    for block in decoder_blocks(policy.backend.model):
        block.mlp.register_forward_hook(
            lambda m, a, out: dtypes.append(out.dtype) if out.requires_grad else None
        )
    policy.sequential_experts_enable()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = policy(batch)
    # the loss's backward runs outside the autocast region, as the Trainer's does
    mix_dpo_objective(
        out.chosen_logps, out.rejected_logps, out.ref_chosen_logps, out.ref_rejected_logps,
        out.gate_logits, ObjectiveConfig(),
    ).loss.total.backward()  # fmt: skip
    assert dtypes
    assert set(dtypes) == {torch.bfloat16}
