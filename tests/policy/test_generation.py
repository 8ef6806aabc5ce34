"""Generation: routing statistics (sample reproduces w), top1/expert/reference, token-level mixing."""

from __future__ import annotations

import pytest
import torch

from mixdpo.errors import ConfigError
from mixdpo.policy import MixturePolicy, PolicyConfig, draw_experts


@pytest.fixture(scope="module", params=["lora", "heads", "independent"])
def policy(request):
    # Strong noise so that the experts decode differently even greedily (random tiny models repeat a lot).
    options = {"init_noise": 3.0} if request.param != "heads" else {"init_noise": 3.0, "num_expert_layers": 1}
    config = PolicyConfig(
        model="random:llama-tiny", num_experts=3, backend=request.param, backend_options=options
    )
    policy = MixturePolicy.create(config).eval()
    with torch.no_grad():
        policy.gate.logits.copy_(torch.tensor([0.2, 0.3, 0.5]).log())
    return policy


def test_draws_reproduce_the_weights():
    weights = torch.tensor([[0.2, 0.3, 0.5]]).expand(30000, -1)
    draws = torch.tensor(draw_experts(weights, "sample", torch.Generator().manual_seed(0)))
    freq = torch.bincount(draws, minlength=3).float() / len(draws)
    # 30000 draws: standard errors <= 0.0029; 0.012 is > 4 sigma.
    assert freq.tolist() == pytest.approx([0.2, 0.3, 0.5], abs=0.012)
    assert draw_experts(torch.tensor([[0.1, 0.7, 0.2]]), "top1") == [1]
    assert draw_experts(torch.tensor([[0.1, 0.7, 0.2]]), "expert:2") == [2]
    assert draw_experts(torch.tensor([[0.1, 0.7, 0.2]]), "token-mixture") == [None]


@pytest.mark.parametrize("routing", ["expert:3", "expert:x", "random"])
def test_bad_routing_is_a_config_error(routing):
    with pytest.raises(ConfigError, match="routing"):
        draw_experts(torch.tensor([[0.5, 0.5, 0.0]]), routing)


def test_sample_routing_in_generate_reproduces_w(policy):
    out = policy.generate(["Hi"] * 600, routing="sample", max_new_tokens=1, seed=0)
    freq = torch.bincount(torch.tensor(out.experts), minlength=3).float() / 600
    # 600 draws: standard errors <= 0.021; 0.07 is > 3 sigma.
    assert freq.tolist() == pytest.approx([0.2, 0.3, 0.5], abs=0.07)
    again = policy.generate(["Hi"] * 600, routing="sample", max_new_tokens=1, seed=0)
    assert again.experts == out.experts  # seeded


def test_each_routing_decodes_with_the_right_model(policy):
    prompts = ["The movie was", "Tell me"]
    greedy = {"max_new_tokens": 6, "do_sample": False}
    per_expert = [policy.generate(prompts, routing=f"expert:{k}", **greedy).token_ids for k in range(3)]
    assert per_expert[0] != per_expert[1] or per_expert[1] != per_expert[2]
    top1 = policy.generate(prompts, routing="top1", **greedy)
    assert top1.experts == [2, 2]
    assert top1.token_ids == per_expert[2]
    sampled = policy.generate(prompts, routing="sample", seed=3, **greedy)
    for i, k in enumerate(sampled.experts):
        assert sampled.token_ids[i] == per_expert[k][i]
    ref = policy.generate(prompts, routing="reference", **greedy)
    assert ref.experts == [None, None]
    assert all(isinstance(t, str) for t in ref.texts)


def test_token_mixture_with_one_hot_weights_is_that_expert(policy):
    with torch.no_grad():
        saved = policy.gate.logits.clone()
        policy.gate.logits.copy_(torch.tensor([-1e4, 0.0, -1e4]))
    try:
        mixed = policy.generate(
            ["The movie was", "Hi"], routing="token-mixture", max_new_tokens=8, do_sample=False
        )
        alone = policy.generate(
            ["The movie was", "Hi"], routing="expert:1", max_new_tokens=8, do_sample=False
        )
    finally:
        with torch.no_grad():
            policy.gate.logits.copy_(saved)
    assert mixed.token_ids == alone.token_ids


def test_token_mixture_first_token_is_argmax_of_the_mixed_distribution(policy):
    prompt = "The movie was"
    enc = policy.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    probs = []
    for k in range(3):
        with policy.backend.use_expert(k) as model, torch.no_grad():
            probs.append(torch.softmax(model(**enc).logits[0, -1].float(), -1))
    mixture = 0.2 * probs[0] + 0.3 * probs[1] + 0.5 * probs[2]
    out = policy.generate([prompt], routing="token-mixture", max_new_tokens=1, do_sample=False)
    assert out.token_ids[0][:1] == [int(mixture.argmax())] or out.token_ids[0] == []
