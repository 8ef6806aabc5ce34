"""The built-in byte-level tokenizer: lossless text round trip, ChatML template, save/load."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from mixdpo.models import BYTE_VOCAB_SIZE, build_byte_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return build_byte_tokenizer()


def test_vocabulary_is_bytes_then_specials(tokenizer):
    assert len(tokenizer) == BYTE_VOCAB_SIZE == 260
    # Token id b is byte b: the encoding of a text is its UTF-8 bytes.
    assert tokenizer("Aé")["input_ids"] == list("Aé".encode())
    assert tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>"]) == [
        256,
        257,
        258,
        259,
    ]
    assert tokenizer.eos_token == tokenizer.bos_token == "<|endoftext|>"
    assert tokenizer.pad_token == "<|pad|>"
    assert tokenizer.padding_side == "right"


@pytest.mark.parametrize(
    "text", ["", "hello world", "  two  spaces\n\ttab", "Grüße, naïve café", "日本語 🙂 👩‍👩‍👧"]
)
def test_round_trip_examples(tokenizer, text):
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids) == text


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=40))
def test_round_trip_any_text(text):
    tokenizer = build_byte_tokenizer()
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_special_tokens_are_skipped_on_request(tokenizer):
    ids = [*tokenizer("hi")["input_ids"], tokenizer.eos_token_id, tokenizer.pad_token_id]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "hi"
    assert tokenizer.decode(ids) == "hi<|endoftext|><|pad|>"


def test_chat_template_renders_chatml(tokenizer):
    conversation = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi ü"},
        {"role": "assistant", "content": "Hello."},
    ]
    rendered = tokenizer.apply_chat_template(conversation, tokenize=False)
    assert rendered == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi ü<|im_end|>\n"
        "<|im_start|>assistant\nHello.<|im_end|>\n"
    )
    prompt = tokenizer.apply_chat_template(conversation[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>user\nHi ü<|im_end|>\n<|im_start|>assistant\n")
    # The markers are single special tokens, not spelled out byte by byte.
    ids = tokenizer(prompt)["input_ids"]
    assert ids.count(tokenizer.convert_tokens_to_ids("<|im_start|>")) == 3


def test_padding_batch(tokenizer):
    batch = tokenizer(["ab", "abcd"], padding=True, return_tensors="pt")
    assert batch["input_ids"][0].tolist() == [97, 98, 257, 257]
    assert batch["attention_mask"][0].tolist() == [1, 1, 0, 0]


def test_save_and_reload(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "round trip ✓"
    assert reloaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert reloaded.chat_template == tokenizer.chat_template
    assert (reloaded.pad_token, reloaded.eos_token) == (tokenizer.pad_token, tokenizer.eos_token)
