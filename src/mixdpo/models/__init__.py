"""Model resolution: one spec string (``random:llama-tiny``, ``builtin:smollm2-135m``, a path, a Hub id)
becomes a model, its tokenizer and a stable identity of its weights. See :func:`describe_spec`."""

from mixdpo.models.builtin import mixdpo_cache_dir
from mixdpo.models.byte_tokenizer import BYTE_VOCAB_SIZE, build_byte_tokenizer
from mixdpo.models.errors import BuiltinModelMissingError, ModelLoadError, ModelNotFoundError
from mixdpo.models.random_presets import PRESETS, RandomPreset, list_presets
from mixdpo.models.resolve import KINDS, LoadedModel, describe_spec, load_model_and_tokenizer

__all__ = [
    "BYTE_VOCAB_SIZE",
    "KINDS",
    "PRESETS",
    "BuiltinModelMissingError",
    "LoadedModel",
    "ModelLoadError",
    "ModelNotFoundError",
    "RandomPreset",
    "build_byte_tokenizer",
    "describe_spec",
    "list_presets",
    "load_model_and_tokenizer",
    "mixdpo_cache_dir",
]
