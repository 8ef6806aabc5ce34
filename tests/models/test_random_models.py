"""``random:<preset>`` models: real architectures, deterministic per seed, forward and generate work."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from transformers import GPT2LMHeadModel, LlamaForCausalLM

from mixdpo.models import BYTE_VOCAB_SIZE, PRESETS, LoadedModel, list_presets, load_model_and_tokenizer

TINY = ["random:gpt2-tiny", "random:llama-tiny"]


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_tiny_presets_have_the_documented_shapes():
    gpt2 = load_model_and_tokenizer("random:gpt2-tiny").model
    assert isinstance(gpt2, GPT2LMHeadModel)
    assert (gpt2.config.n_layer, gpt2.config.n_embd, gpt2.config.n_head) == (2, 64, 4)
    llama = load_model_and_tokenizer("random:llama-tiny").model
    assert isinstance(llama, LlamaForCausalLM)
    config = llama.config
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (2, 64, 4)
    assert config.num_key_value_heads == 2
    for model in (gpt2, llama):
        assert model.config.vocab_size == BYTE_VOCAB_SIZE
        assert not model.training


@pytest.mark.parametrize("preset", ["gpt2-small", "llama-small"])
def test_small_presets_have_a_few_million_parameters(preset):
    model = load_model_and_tokenizer(f"random:{preset}").model
    assert 1_000_000 < model.num_parameters() < 10_000_000


def test_every_preset_is_listed():
    assert set(list_presets()) == set(PRESETS) >= {"gpt2-tiny", "llama-tiny", "gpt2-small", "llama-small"}


@pytest.mark.parametrize("spec", TINY)
def test_same_seed_same_weights_other_seed_other_weights(spec):
    a = load_model_and_tokenizer(spec, seed=3)
    b = load_model_and_tokenizer(spec, seed=3)
    c = load_model_and_tokenizer(spec, seed=4)
    assert _same_weights(a.model, b.model)
    assert a.identity == b.identity
    assert not _same_weights(a.model, c.model)
    assert a.identity != c.identity
    assert a.identity.startswith(f"{spec}@seed=3#")
    assert a.kind == "random"


def test_loading_does_not_touch_the_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_model_and_tokenizer("random:llama-tiny", seed=9)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("spec", TINY)
def test_forward_with_padding_and_generate(spec):
    loaded = load_model_and_tokenizer(spec)
    tokenizer, model = loaded.tokenizer, loaded.model
    batch = tokenizer(["hello", "a longer prompt"], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (*batch["input_ids"].shape, BYTE_VOCAB_SIZE)
    assert torch.isfinite(logits).all()

    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**prompt, max_new_tokens=6, do_sample=False)
    assert out.shape[0] == 1
    assert 0 < out.shape[1] - prompt["input_ids"].shape[1] <= 6
    assert isinstance(tokenizer.decode(out[0], skip_special_tokens=True), str)


def test_configs_carry_the_tokenizer_special_ids():
    loaded = load_model_and_tokenizer("random:llama-tiny")
    tokenizer, model = loaded.tokenizer, loaded.model
    assert model.config.pad_token_id == model.generation_config.pad_token_id == tokenizer.pad_token_id
    assert model.config.eos_token_id == tokenizer.eos_token_id
    # generation also stops at the end of a chat turn
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in model.generation_config.eos_token_id


def test_dtype_is_applied_and_part_of_the_identity():
    full = load_model_and_tokenizer("random:llama-tiny")
    half = load_model_and_tokenizer("random:llama-tiny", dtype=torch.bfloat16)
    assert half.model.dtype == torch.bfloat16
    assert half.identity.endswith("~bfloat16")
    assert half.identity != full.identity
    # bfloat16 weights are the float32 ones rounded, not a different initialisation
    w_full = full.model.get_input_embeddings().weight
    assert torch.equal(half.model.get_input_embeddings().weight, w_full.to(torch.bfloat16))


def test_loaded_model_is_frozen_and_short_to_print():
    loaded = load_model_and_tokenizer("random:gpt2-tiny")
    assert isinstance(loaded, LoadedModel)
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.kind = "hub"  # type: ignore[misc]
    assert "Linear" not in repr(loaded)
    assert loaded.spec == "random:gpt2-tiny"
