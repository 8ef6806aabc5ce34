"""Fixtures for the data-pipeline tests (helpers live in data_helpers.py)."""

from __future__ import annotations

import pytest
from data_helpers import make_byte_tokenizer
from transformers import PreTrainedTokenizerFast


@pytest.fixture(scope="session")
def tok() -> PreTrainedTokenizerFast:
    """The byte-level tokenizer of data_helpers (token id == byte value, ChatML-like template)."""
    return make_byte_tokenizer()
