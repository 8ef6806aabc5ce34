"""Helpers for the data-pipeline tests: an offline byte-level tokenizer and writers for every file type.

The tokenizer maps every byte to the token with the same id (``"ab"`` -> ``[97, 98]``), so expected ids
can be written by hand; special tokens get ids 256..259, and plain text gets a BOS prepended (like
Llama tokenizers) so that BOS handling is exercised. Its chat template is ChatML-like and renders the
BOS itself, as real templates do.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

PAD, EOS, BOS, IM_START = 256, 257, 258, 259
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
FILE_KINDS = ("jsonl", "json", "csv", "parquet", "dataset_dir")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (what the ByteLevel pre-tokenizer emits)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def make_byte_tokenizer(*, bos: bool = True) -> PreTrainedTokenizerFast:
    """Byte-level tokenizer: token id == byte value.

    Special tokens: <|pad|>=256, <|im_end|>=257 (EOS), <s>=258 (BOS, prepended to plain text when ``bos``),
    <|im_start|>=259.
    """
    vocab = {char: b for b, char in _bytes_to_unicode().items()}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|pad|>", "<|im_end|>", "<s>", "<|im_start|>"])
    if bos:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", BOS)])
    out = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>" if bos else None,
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
    )
    out.chat_template = CHAT_TEMPLATE
    return out


def ids(text: str) -> list[int]:
    """The byte tokenizer's ids of ``text`` without special tokens."""
    return list(text.encode("utf-8"))


def write_rows(tmp_path: Path, rows: list[dict[str, Any]], kind: str, name: str = "data") -> Path:
    """Write ``rows`` as a file (or saved dataset directory) of ``kind``; returns its path."""
    if kind == "jsonl":
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif kind == "json":
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    elif kind == "csv":
        path = tmp_path / f"{name}.csv"
        header = list(dict.fromkeys(k for r in rows for k in r))
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            for r in rows:
                writer.writerow([_csv_value(r.get(k)) for k in header])
    elif kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = tmp_path / f"{name}.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path)
    elif kind == "dataset_dir":
        import datasets

        path = tmp_path / f"{name}_dataset"
        datasets.Dataset.from_list(rows).save_to_disk(str(path))
    else:
        raise ValueError(kind)
    return path


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)
