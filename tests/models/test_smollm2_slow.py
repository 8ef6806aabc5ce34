"""The real SmolLM2-135M-Instruct: GGUF -> safetensors conversion, cache, logits parity, coherent text.

Converting costs ~40-60 s on 2 CPU cores and each GGUF load ~40 s, so the module converts once into a
temporary cache directory and shares the result, and loads the GGUF file only once more.
"""

from __future__ import annotations

import re
import time

import pytest
import torch
from transformers import LlamaForCausalLM

from mixdpo.models import gguf_loader, load_model_and_tokenizer, mixdpo_cache_dir
from mixdpo.models.builtin import MARKER, SMOLLM2_NAME, smollm2_gguf_path
from mixdpo.models.gguf_loader import dequantized_copy

pytestmark = pytest.mark.slow

PROBE = "The quick brown fox jumps over the lazy dog. Numbers: 1, 2, 3."


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        directory = tmp_path_factory.mktemp("mixdpo-cache")
        patch.setenv("MIXDPO_CACHE_DIR", str(directory))
        yield directory


@pytest.fixture(scope="module")
def converted(cache_dir):
    """The first load: converts the GGUF into the (temporary) cache."""
    return load_model_and_tokenizer("builtin:smollm2-135m")


def _logits(model, tokenizer, text=PROBE):
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(ids).logits


def test_conversion_writes_a_plain_checkpoint(converted, cache_dir):
    assert mixdpo_cache_dir() == cache_dir
    target = cache_dir / "models" / SMOLLM2_NAME
    assert (target / MARKER).is_file()
    assert (target / "model.safetensors").stat().st_size > 400_000_000
    model = converted.model
    assert isinstance(model, LlamaForCausalLM)
    assert getattr(model.config, "quantization_config", None) is None
    assert model.num_parameters() == 134_515_008
    assert model.lm_head.weight is model.get_input_embeddings().weight
    assert converted.kind == "builtin"
    assert re.fullmatch(r"builtin:smollm2-135m-instruct@[0-9a-f]{12}", converted.identity)


def test_cached_load_is_fast_and_identical(converted):
    started = time.perf_counter()
    again = load_model_and_tokenizer("builtin:smollm2-135m-instruct")
    assert time.perf_counter() - started < 10.0
    assert again.identity == converted.identity
    assert torch.equal(_logits(again.model, again.tokenizer), _logits(converted.model, converted.tokenizer))


def test_gguf_path_spec_and_conversion_match_the_gguf_model(converted, monkeypatch):
    """One GGUF load (~40 s) checks both the ``.gguf`` spec and the converted cache against transformers."""
    sources = []

    def recording_copy(source, dtype=None):
        sources.append(source)
        return dequantized_copy(source, dtype)

    monkeypatch.setattr(gguf_loader, "dequantized_copy", recording_copy)
    loaded = load_model_and_tokenizer(str(smollm2_gguf_path()))
    assert loaded.kind == "gguf"
    assert loaded.identity.startswith("gguf:SmolLM2-135M-Instruct.Q4_1.gguf@")
    assert getattr(loaded.model.config, "quantization_config", None) is None
    # the model exactly as transformers loads the GGUF file
    (gguf_loaded,) = sources
    assert getattr(gguf_loaded.config, "quantization_config", None) is not None
    expected = _logits(gguf_loaded, converted.tokenizer)
    torch.testing.assert_close(_logits(converted.model, converted.tokenizer), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(_logits(loaded.model, loaded.tokenizer), expected, rtol=1e-5, atol=1e-5)


def test_chat_prompt_gets_a_coherent_answer(converted):
    tokenizer, model = converted.tokenizer, converted.model
    assert tokenizer.pad_token is not None
    assert tokenizer.padding_side == "right"
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**prompt, max_new_tokens=24, do_sample=False)
    answer = tokenizer.decode(out[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True).strip()
    words = answer.split()
    assert len(words) >= 2
    assert sum(word.strip(".,!?;:'\"").isascii() for word in words) >= 0.8 * len(words)
    assert "Paris" in answer
