"""``gate_features``: what a prompt gate reads. ``embeddings`` is the mean of the prompt's token embeddings
(no decoder forward), ``last`` the mean of the reference's final hidden state; the choice is saved with the
policy, keys the reference cache, and is checked where it is set."""

from __future__ import annotations

import pytest
import torch

from helpers import CHOSEN, PROMPTS, REJECTED, encode_pairs
from mixdpo.errors import ConfigError
from mixdpo.policy import MixturePolicy, PolicyConfig
from mixdpo.trainer import MixDPOConfig

BACKENDS = [("lora", {"r": 4}), ("heads", {"num_expert_layers": 1}), ("independent", {})]


def _policy(model: str, backend: str, options: dict, features: str) -> MixturePolicy:
    config = PolicyConfig(model=model, num_experts=2, backend=backend, backend_options=options, gate="prompt",
                          gate_features=features)  # fmt: skip
    return MixturePolicy.create(config)


def _by_hand(weight: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the embedding rows of each prompt's real tokens, one prompt at a time."""
    rows = []
    for i in range(ids.shape[0]):
        real = ids[i][mask[i].bool()]
        rows.append(torch.stack([weight[t] for t in real.tolist()]).double().mean(0))
    return torch.stack(rows)


@pytest.mark.parametrize("model", ["random:gpt2-tiny", "random:llama-tiny"])
@pytest.mark.parametrize(("backend", "options"), BACKENDS)
def test_embedding_features_are_the_mean_token_embedding_without_a_forward(model, backend, options):
    policy = _policy(model, backend, options, "embeddings")
    batch = encode_pairs(policy.tokenizer, PROMPTS, CHOSEN, REJECTED, padding_side="left")
    ids, mask = batch["prompt_input_ids"], batch["prompt_attention_mask"]
    assert (mask == 0).any()  # padding is left out of the mean
    ran: list[str] = []
    hooks = [m.register_forward_hook(lambda *a, name=n: ran.append(name))
             for n, m in policy.backend.named_modules() if n.endswith(("h.0", "layers.0"))]  # fmt: skip
    assert hooks  # the first decoder block of every model the backend holds
    features = policy.backend.prompt_features(ids, mask)
    assert ran == []  # no decoder block ran
    weight = policy.backend.feature_model().get_input_embeddings().weight.detach()
    torch.testing.assert_close(features.double(), _by_hand(weight, ids, mask), rtol=1e-5, atol=1e-6)


def test_last_is_the_final_hidden_state_and_the_default():
    assert PolicyConfig().gate_features == "last"
    assert MixDPOConfig(output_dir="unused", report_to=[]).gate_features == "last"
    policy = _policy("random:llama-tiny", "independent", {}, "last")  # its feature model: a plain HF model
    ids = policy.tokenizer(PROMPTS[0], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = policy.backend.feature_model()(ids, output_hidden_states=True)
    want = out.hidden_states[-1][0].mean(0)  # after the final norm, one unpadded prompt
    torch.testing.assert_close(policy.backend.prompt_features(ids, torch.ones_like(ids))[0], want)


def test_the_choice_is_saved_with_the_policy(tmp_path):
    policy = _policy("random:llama-tiny", "lora", {"r": 4}, "embeddings")
    policy.save_pretrained(tmp_path)
    loaded = MixturePolicy.from_pretrained(tmp_path)
    assert loaded.policy_config.gate_features == "embeddings"
    assert loaded.backend.gate_features == "embeddings"
    # a policy saved before the option existed read the final hidden state, whatever the default is now
    old = policy.policy_config.to_dict()
    del old["gate_features"]
    assert PolicyConfig.from_dict(old).gate_features == "last"


def test_the_choice_keys_the_reference_cache():
    keys = {
        features: _policy("random:llama-tiny", "lora", {"r": 4}, features).reference_key("data", {})
        for features in ("last", "embeddings")
    }
    assert keys["last"].extra == {"prompt_features": "mean-pooled-final-hidden"}  # as cached before
    assert keys["embeddings"].extra == {"prompt_features": "mean-pooled-embeddings"}
    assert keys["last"].digest() != keys["embeddings"].digest()


UNKNOWN = {
    "policy": lambda: PolicyConfig(gate="prompt", gate_features="words"),
    "trainer": lambda: MixDPOConfig(output_dir="unused", report_to=[], gate="prompt", gate_features="words"),
}


@pytest.mark.parametrize("where", list(UNKNOWN))
def test_an_unknown_choice_names_the_option_and_the_choices(where):
    with pytest.raises(ConfigError, match=r"gate_features.*'words'.*last, embeddings"):
        UNKNOWN[where]()
