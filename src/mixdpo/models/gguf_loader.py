"""Loading ``.gguf`` files into plain, trainable transformers models.

transformers de-quantizes GGUF tensors to float on load but keeps the model marked as quantized (a
``quantization_config`` on its config, an ``hf_quantizer`` on the model): ``save_pretrained`` then refuses
it and the Trainer treats it as a frozen quantized base. :func:`dequantized_copy` rebuilds the same
architecture without that mark and copies the weights over.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from mixdpo.models.errors import ModelLoadError, ModelNotFoundError


def dequantized_copy(source: PreTrainedModel, dtype: torch.dtype | None = None) -> PreTrainedModel:
    """A plain model of ``source``'s architecture holding a copy of ``source``'s weights.

    Args:
        source: a model loaded from GGUF (or any model).
        dtype: dtype of the copy; ``source``'s dtype by default.
    """
    config = source.config.__class__.from_dict(
        {key: value for key, value in source.config.to_dict().items() if key != "quantization_config"}
    )
    with torch.random.fork_rng(devices=[]):  # the random init is overwritten; keep the caller's RNG intact
        model = AutoModelForCausalLM.from_config(config, dtype=dtype or source.dtype)
    # strict: a missing or renamed tensor must fail here, not leave random weights behind. Copying into
    # the new parameters also casts to their dtype.
    model.load_state_dict(source.state_dict(), strict=True)
    model.tie_weights()
    model.generation_config = source.generation_config
    return model.eval()


def load_gguf(path: Path, dtype: torch.dtype) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load the model and tokenizer stored in a ``.gguf`` file.

    Raises:
        ModelNotFoundError: the file does not exist.
        ModelLoadError: the ``gguf`` package is missing or the file cannot be read.
    """
    if not path.is_file():
        raise ModelNotFoundError(f"GGUF file {path.absolute()} does not exist")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        source = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    except ImportError as error:
        raise ModelLoadError(
            f"loading {path} needs the gguf package: pip install gguf==0.19.0 ({error})"
        ) from error
    except (OSError, ValueError, KeyError) as error:
        raise ModelLoadError(f"cannot load GGUF file {path}: {error}") from error
    return dequantized_copy(source, dtype), tokenizer
