"""MixturePolicy: save/load round trip, users, scoring and the forward contract."""

from __future__ import annotations

import json
import math

import pytest
import torch

from helpers import CHOSEN, PROMPTS, REJECTED, encode_pairs
from mixdpo.errors import ConfigError, MixDPOError
from mixdpo.logprobs import sequence_logps
from mixdpo.policy import MixturePolicy, PolicyConfig

BACKENDS = [("lora", {"r": 4}), ("heads", {"num_expert_layers": 1}), ("independent", {})]


def policy_batch(policy, users=("alice", None, "bob")):
    batch = encode_pairs(policy.tokenizer, PROMPTS, CHOSEN, REJECTED)
    batch["user_ids"] = policy.user_ids(list(users))
    return batch


@pytest.mark.parametrize(("backend", "options"), BACKENDS)
@pytest.mark.parametrize("model", ["random:gpt2-tiny", "random:llama-tiny"])
def test_save_and_load_round_trip_is_bit_exact(tmp_path, backend, options, model):
    config = PolicyConfig(
        model=model, num_experts=3, backend=backend, backend_options=options, gate="prompt+user"
    )
    policy = MixturePolicy.create(config, users=["alice", "bob"]).eval()
    with torch.no_grad():  # make the gate non-trivial so the round trip checks its weights too
        for p in policy.gate.parameters():
            p.normal_()
    batch = policy_batch(policy)
    with torch.no_grad():
        before = policy(batch)
    policy.save_pretrained(tmp_path)
    loaded = MixturePolicy.from_pretrained(tmp_path)
    assert loaded.users == ["alice", "bob"]
    with torch.no_grad():
        after = loaded(batch)
    for name in ("chosen_logps", "rejected_logps", "ref_chosen_logps", "ref_rejected_logps", "gate_logits"):
        assert torch.equal(getattr(before, name), getattr(after, name)), name
    if backend == "lora":  # adapters are stored in PEFT's own format
        assert (tmp_path / "experts" / "expert_2" / "adapter_model.safetensors").is_file()


def test_forward_shapes_and_precomputed_references_are_used():
    policy = MixturePolicy.create(PolicyConfig(num_experts=2, gate="global"))
    batch = policy_batch(policy)
    out = policy(batch)
    assert out.chosen_logps.shape == (3, 2)
    assert out.ref_chosen_logps.shape == (3, 1)
    assert out.gate_logits.shape == (2,)
    batch["ref_chosen_logps"] = torch.full((3,), -1.0)
    batch["ref_rejected_logps"] = torch.full((3,), -2.0)
    out = policy(batch)
    assert out.ref_chosen_logps.tolist() == [[-1.0]] * 3


def test_loading_refuses_a_newer_format_and_a_changed_base(tmp_path):
    policy = MixturePolicy.create(PolicyConfig(num_experts=2, seed=0))
    policy.save_pretrained(tmp_path)
    meta = json.loads((tmp_path / "mixdpo_policy.json").read_text())
    meta["policy"]["seed"] = 1  # a different random base than the adapters were trained on
    (tmp_path / "mixdpo_policy.json").write_text(json.dumps(meta))
    with pytest.raises(MixDPOError, match="was trained on"):
        MixturePolicy.from_pretrained(tmp_path)
    meta["format_version"] = 99
    (tmp_path / "mixdpo_policy.json").write_text(json.dumps(meta))
    with pytest.raises(MixDPOError, match="upgrade mixdpo"):
        MixturePolicy.from_pretrained(tmp_path)
    with pytest.raises(MixDPOError, match="not a saved mixdpo policy"):
        MixturePolicy.from_pretrained(tmp_path / "nowhere")


def test_config_errors_name_the_option():
    with pytest.raises(ConfigError, match="backend"):
        PolicyConfig(backend="adapters")
    with pytest.raises(ConfigError, match="top_k"):
        PolicyConfig(num_experts=2, top_k=3)
    with pytest.raises(ConfigError, match=r"backend_options\.rank"):
        MixturePolicy.create(PolicyConfig(backend_options={"rank": 4}))


def test_new_users_start_from_the_fallback_prior():
    policy = MixturePolicy.create(PolicyConfig(num_experts=2, gate="user"), users=["alice"])
    policy.eval()  # inference: no user dropout (in training mode alice is sometimes routed as the fallback)
    with torch.no_grad():
        policy.gate.table.weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 1.0]]))  # alice, fallback
    assert policy.add_users(["carol", "alice"]) == ["carol"]
    assert policy.users == ["alice", "carol"]
    ids = policy.user_ids(["alice", "carol", "zed", None])
    assert ids.tolist() == [0, 1, -1, -1]
    logits = policy.gate(policy.gate_inputs({"input_ids": torch.zeros(8, 1), "user_ids": ids}))
    assert logits.tolist() == [[3.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]
    with pytest.raises(MixDPOError, match="no user table"):
        MixturePolicy.create(PolicyConfig(num_experts=2, gate="global")).add_users(["x"])


def test_score_is_beta_times_the_log_ratio_and_the_mixture_reward():
    policy = MixturePolicy.create(PolicyConfig(num_experts=2, beta=0.5, backend_options={"init_noise": 0.2}))
    policy.eval()
    scores = policy.score(PROMPTS, CHOSEN)
    batch = encode_pairs(policy.tokenizer, PROMPTS, CHOSEN, CHOSEN)
    args = (batch["input_ids"][:3], batch["attention_mask"][:3], batch["completion_mask"][:3])
    for k in range(2):
        with policy.backend.use_expert(k) as model, torch.no_grad():
            logp = sequence_logps(model, *args)
        with policy.backend.use_expert(None) as ref, torch.no_grad():
            ref_logp = sequence_logps(ref, *args)
        torch.testing.assert_close(scores.rewards[:, k], 0.5 * (logp - ref_logp), rtol=1e-5, atol=1e-5)
    w = scores.weights[0].tolist()
    assert w == pytest.approx([0.5, 0.5])
    r = scores.rewards[0].tolist()
    assert scores.mixture_reward[0].item() == pytest.approx(
        math.log(0.5 * math.exp(r[0]) + 0.5 * math.exp(r[1]))
    )


def test_score_renders_chat_prompts_with_the_template():
    policy = MixturePolicy.create(PolicyConfig(num_experts=1))
    chat = policy.score([[{"role": "user", "content": "hi"}]], ["hello"])
    text = policy.tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    plain = policy.score([text], ["hello<|im_end|>\n"])
    torch.testing.assert_close(chat.logps, plain.logps)


@pytest.mark.parametrize("gate", ["global", "prompt", "prompt+user"])
def test_the_same_config_builds_the_same_initial_policy_whatever_the_global_rng(gate):
    # the prompt gate's hidden layer is random: it once came from the global RNG, so a torchrun process
    # and a 1-process run of the same config started with different gates
    config = PolicyConfig(num_experts=2, backend="lora", seed=3, gate=gate)
    torch.manual_seed(0)
    a = MixturePolicy.create(config, users=["u"]).state_dict()
    torch.manual_seed(12345)
    torch.rand(100)
    b = MixturePolicy.create(config, users=["u"]).state_dict()
    assert all(torch.equal(a[n], b[n]) for n in a)
    if gate != "global":
        assert any(n.startswith("gate.") and a[n].numel() > 1 and a[n].std() > 0 for n in a)  # seeded init
    state = torch.random.get_rng_state()
    MixturePolicy.create(config, users=["u"])
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's RNG is left alone
