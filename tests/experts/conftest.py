from __future__ import annotations

import pytest
import torch

from helpers import CHOSEN, PROMPTS, REJECTED, encode_pairs
from mixdpo.models import load_model_and_tokenizer


@pytest.fixture(params=["random:gpt2-tiny", "random:llama-tiny"])
def loaded(request):
    """A fresh tiny model (GPT-2 and Llama) with dropout off so train-mode forwards are deterministic."""
    loaded = load_model_and_tokenizer(request.param, seed=0)
    for module in loaded.model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return loaded


@pytest.fixture
def batch(loaded):
    return encode_pairs(loaded.tokenizer, PROMPTS, CHOSEN, REJECTED)
