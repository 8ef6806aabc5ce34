"""Randomly initialised models for tests and benchmarks: ``random:<preset>``.

Each preset is a real ``transformers`` architecture (GPT-2 or Llama) at a tiny size with the 260-token
byte-level tokenizer of :mod:`mixdpo.models.byte_tokenizer`, so everything downstream (LoRA, generation,
save/load, the Trainer) meets the same code paths as with a pretrained checkpoint, in milliseconds.

Adding a preset is adding one entry to :data:`PRESETS`: an architecture name and the config fields that
differ from the defaults below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, PretrainedConfig, PreTrainedModel

from mixdpo.models.byte_tokenizer import BYTE_VOCAB_SIZE

MAX_POSITIONS = 1024


@dataclass(frozen=True)
class RandomPreset:
    """A named random-model recipe.

    Attributes:
        architecture: ``"gpt2"`` or ``"llama"`` (a key of :data:`ARCHITECTURES`).
        description: one line for help text.
        config: config fields that override the architecture's defaults (sizes, mostly).
    """

    architecture: str
    description: str
    config: dict[str, Any] = field(default_factory=dict)


def _gpt2_config(tokens: dict[str, Any], **overrides: Any) -> PretrainedConfig:
    # Dropout off: DPO implementations disable it anyway, and it keeps train-mode forwards deterministic.
    defaults: dict[str, Any] = dict(
        n_positions=MAX_POSITIONS, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=True
    )
    return GPT2Config(vocab_size=BYTE_VOCAB_SIZE, **tokens, **{**defaults, **overrides})


def _llama_config(tokens: dict[str, Any], **overrides: Any) -> PretrainedConfig:
    # Tied embeddings and a ~2.7x MLP, like SmolLM2; head_dim follows from hidden_size / heads.
    defaults: dict[str, Any] = dict(
        max_position_embeddings=MAX_POSITIONS, tie_word_embeddings=True, attention_dropout=0.0
    )
    return LlamaConfig(vocab_size=BYTE_VOCAB_SIZE, **tokens, **{**defaults, **overrides})


ARCHITECTURES = {"gpt2": _gpt2_config, "llama": _llama_config}

PRESETS: dict[str, RandomPreset] = {
    "gpt2-tiny": RandomPreset(
        "gpt2", "GPT-2, 2 layers, hidden 64, 4 heads (unit tests)", dict(n_layer=2, n_embd=64, n_head=4)
    ),
    "llama-tiny": RandomPreset(
        "llama",
        "Llama, 2 layers, hidden 64, 4 heads / 2 KV heads (unit tests)",
        dict(
            num_hidden_layers=2,
            hidden_size=64,
            intermediate_size=176,
            num_attention_heads=4,
            num_key_value_heads=2,
        ),
    ),
    "gpt2-small": RandomPreset(
        "gpt2", "GPT-2, 4 layers, hidden 256, 4 heads (benchmarks)", dict(n_layer=4, n_embd=256, n_head=4)
    ),
    "llama-small": RandomPreset(
        "llama",
        "Llama, 4 layers, hidden 256, 4 heads / 2 KV heads (benchmarks)",
        dict(
            num_hidden_layers=4,
            hidden_size=256,
            intermediate_size=688,
            num_attention_heads=4,
            num_key_value_heads=2,
        ),
    ),
    # The quality benchmark's model sizes (with SmolLM2-135M): ~0.8M and ~18M parameters.
    "llama-1m": RandomPreset(
        "llama",
        "Llama, 4 layers, hidden 128, 4 heads / 2 KV heads, ~0.8M parameters (quality benchmark)",
        dict(
            num_hidden_layers=4,
            hidden_size=128,
            intermediate_size=344,
            num_attention_heads=4,
            num_key_value_heads=2,
        ),
    ),
    "llama-20m": RandomPreset(
        "llama",
        "Llama, 6 layers, hidden 512, 8 heads / 4 KV heads, ~18M parameters (quality benchmark)",
        dict(
            num_hidden_layers=6,
            hidden_size=512,
            intermediate_size=1376,
            num_attention_heads=8,
            num_key_value_heads=4,
        ),
    ),
}


def list_presets() -> dict[str, str]:
    """Names of the ``random:`` presets mapped to their one-line descriptions."""
    return {name: preset.description for name, preset in PRESETS.items()}


def build_random_config(preset: str, special_token_ids: dict[str, Any]) -> PretrainedConfig:
    """The config of ``preset`` with the tokenizer's special-token ids (``bos/eos/pad_token_id``).

    Raises:
        KeyError: ``preset`` is not in :data:`PRESETS` (the resolver turns this into a user error).
    """
    recipe = PRESETS[preset]
    return ARCHITECTURES[recipe.architecture](special_token_ids, **recipe.config)


def build_random_model(config: PretrainedConfig, seed: int) -> PreTrainedModel:
    """A model of ``config`` initialised from ``seed``: bit-identical for one seed, in eval mode.

    The global torch RNG is forked so that building a model neither depends on nor disturbs the caller's
    random state.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    return model.eval()
