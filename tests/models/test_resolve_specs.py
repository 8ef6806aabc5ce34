"""Spec dispatch: local directories, .gguf paths, Hub ids (offline) and the errors users see."""

from __future__ import annotations

import os
import time

import pytest
import torch

from mixdpo.errors import MixDPOError
from mixdpo.models import (
    KINDS,
    ModelNotFoundError,
    describe_spec,
    list_presets,
    load_model_and_tokenizer,
)


@pytest.fixture
def saved_random(tmp_path):
    """A random llama-tiny saved with save_pretrained, as a training run would leave it."""
    loaded = load_model_and_tokenizer("random:llama-tiny", seed=5)
    directory = tmp_path / "ckpt"
    loaded.model.save_pretrained(directory)
    loaded.tokenizer.save_pretrained(directory)
    return loaded, directory


def test_local_directory_round_trip(saved_random):
    original, directory = saved_random
    reloaded = load_model_and_tokenizer(str(directory))
    assert reloaded.kind == "local"
    assert type(reloaded.model) is type(original.model)
    ids = original.tokenizer(["Grüße aus dem Test"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.equal(reloaded.model(ids).logits, original.model(ids).logits)
    assert reloaded.tokenizer.chat_template == original.tokenizer.chat_template
    assert reloaded.tokenizer.pad_token == "<|pad|>"
    assert reloaded.tokenizer.padding_side == "right"


def test_local_identity_is_stable_and_tracks_changes(saved_random):
    _, directory = saved_random
    first = load_model_and_tokenizer(str(directory)).identity
    assert first == load_model_and_tokenizer(str(directory)).identity
    assert first.startswith("local:ckpt@")
    weights = directory / "model.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert load_model_and_tokenizer(str(directory)).identity != first


def test_directory_without_config_is_rejected(tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match=r"no config\.json.*PEFT adapter"):
        load_model_and_tokenizer(str(tmp_path))


def test_missing_gguf_file(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist") as info:
        load_model_and_tokenizer(str(tmp_path / "missing.gguf"))
    assert isinstance(info.value, MixDPOError)


@pytest.mark.parametrize("spec", ["/no/such/dir", "./no_such_dir", "~/no_such_mixdpo_dir"])
def test_missing_paths(spec):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_model_and_tokenizer(spec)


def test_existing_file_that_is_not_a_model(tmp_path):
    path = tmp_path / "weights.safetensors"
    path.write_bytes(b"")
    with pytest.raises(ModelNotFoundError, match=r"neither a model directory nor a \.gguf file"):
        load_model_and_tokenizer(str(path))


@pytest.mark.parametrize("spec", ["mixdpo-test/not-in-any-cache", "hub:mixdpo-test/not-in-any-cache@main"])
def test_hub_id_offline_fails_fast_with_help(monkeypatch, spec):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(ModelNotFoundError) as info:
        load_model_and_tokenizer(spec)
    assert time.perf_counter() - started < 2.0
    message = str(info.value)
    assert "offline" in message
    for expected in ("random:<preset>", "builtin:", ".gguf", *list_presets()):
        assert expected in message


@pytest.mark.parametrize("spec", ["a b", "what:ever", "random:", "org/name/extra"])
def test_unintelligible_specs(spec):
    with pytest.raises(ModelNotFoundError, match="Accepted model specs"):
        load_model_and_tokenizer(spec)


def test_unknown_preset_suggests_the_closest():
    with pytest.raises(ModelNotFoundError, match="Did you mean random:llama-tiny"):
        load_model_and_tokenizer("random:lama-tiny")


def test_unknown_builtin_lists_the_builtins():
    with pytest.raises(ModelNotFoundError, match="smollm2-135m"):
        load_model_and_tokenizer("builtin:gpt-5")


def test_describe_spec_names_every_form():
    text = describe_spec()
    for part in ("random:<preset>", "builtin:<name>", ".gguf", "config.json", "Hub", *list_presets()):
        assert part in text
    assert KINDS == ("random", "builtin", "gguf", "local", "hub")


def test_identities_are_distinct_across_specs_and_seeds():
    identities = {
        load_model_and_tokenizer(spec, seed=seed).identity
        for spec in ("random:gpt2-tiny", "random:llama-tiny")
        for seed in (0, 1)
    }
    assert len(identities) == 4
