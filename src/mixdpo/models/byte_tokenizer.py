"""A byte-level tokenizer built in code: no files, no downloads, a vocabulary of 260 tokens.

Random test models use it because with a real 50k vocabulary the output projection dominates a tiny
model and makes tests ~10x slower (ENV.md). Token id ``b`` (0..255) is the byte ``b`` itself, so any
text, non-ASCII included, encodes losslessly and decodes back exactly. Four special tokens follow the
bytes; the chat template is ChatML (the format SmolLM2-Instruct uses), so conversational data renders the
same way for a random model and for the real one.

The tokenizer is assembled from the ``tokenizers`` library's byte-level pieces (the GPT-2 byte-to-unicode
alphabet, a BPE model without merges) and wrapped as a ``transformers`` fast tokenizer, so
``save_pretrained`` / ``AutoTokenizer.from_pretrained`` round-trip it like any other.
"""

from __future__ import annotations

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import bytes_to_unicode

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
# Order fixes the ids: 256, 257, 258, 259.
SPECIAL_TOKENS = (EOS_TOKEN, PAD_TOKEN, IM_START, IM_END)
BYTE_VOCAB_SIZE = 256 + len(SPECIAL_TOKENS)

# ChatML, as in SmolLM2-Instruct but without its default system prompt (a random model has no name).
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def build_byte_tokenizer(model_max_length: int = 1024) -> PreTrainedTokenizerFast:
    """Build the byte-level tokenizer with ChatML chat template.

    Args:
        model_max_length: longest sequence the model it serves accepts (its position limit).

    Returns:
        A fast tokenizer with ``len(tokenizer) == BYTE_VOCAB_SIZE`` (260): ids 0..255 are bytes,
        256 ``<|endoftext|>`` (bos and eos), 257 ``<|pad|>``, 258 ``<|im_start|>``, 259 ``<|im_end|>``.
        No special tokens are added when encoding; padding is on the right.
    """
    byte_to_char = bytes_to_unicode()
    vocab = {byte_to_char[byte]: byte for byte in range(256)}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    # use_regex=False: with no merges, splitting into words first would only cost time.
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in SPECIAL_TOKENS])

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[IM_START, IM_END],
        model_max_length=model_max_length,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer
