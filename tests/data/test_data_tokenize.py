"""Tokenization: special tokens, EOS, truncation in both modes with exact ids, and rows that cannot fit.

The byte tokenizer's ids are the bytes of the text (``ids("ab") == [97, 98]``), BOS=258 and EOS=257.
"""

from __future__ import annotations

import json

import pytest
from data_helpers import BOS, EOS, ids, make_byte_tokenizer

from mixdpo.data import (
    PreferenceRecord,
    RawRow,
    TokenizationSettings,
    to_record,
    tokenize_pair,
    tokenize_rows,
)
from mixdpo.errors import ConfigError, DataError


def _rec(prompt: str, chosen: str, rejected: str, row: int = 1) -> PreferenceRecord:
    return PreferenceRecord(prompt, chosen, rejected, path="d.jsonl", row=row)


def test_text_pair(tok):
    pair = tokenize_pair(_rec("ab", "c", "de"), tok)
    assert pair == {"prompt_ids": [BOS, 97, 98], "chosen_ids": [99, EOS], "rejected_ids": [100, 101, EOS]}


def test_no_bos_duplication_and_no_double_eos(tok):
    pair = tokenize_pair(_rec("<s>ab", "c<|im_end|>", "d<|im_end|> \n"), tok)
    assert pair["prompt_ids"] == [BOS, 97, 98]
    assert pair["chosen_ids"] == [99, EOS]
    assert pair["rejected_ids"] == [100, EOS, 32, 10]  # already ends with EOS (whitespace aside)
    no_bos = make_byte_tokenizer(bos=False)
    assert tokenize_pair(_rec("ab", "c", "d"), no_bos)["prompt_ids"] == [97, 98]


def test_chat_pair_has_one_bos_and_the_templates_eos(tok):
    user, say = {"role": "user", "content": "Hi"}, lambda text: [{"role": "assistant", "content": text}]
    row = RawRow({"prompt": [user], "chosen": say("Yo"), "rejected": say("No")}, None, 1)
    pair = tokenize_pair(to_record(row, tokenizer=tok), tok)
    rendered_prompt = tok.apply_chat_template([user], tokenize=False, add_generation_prompt=True)
    assert pair["prompt_ids"] == tok(rendered_prompt, add_special_tokens=False)["input_ids"]
    assert pair["prompt_ids"].count(BOS) == 1
    assert pair["prompt_ids"][0] == BOS
    assert pair["chosen_ids"] == [*ids("Yo"), EOS, 10]  # "Yo<|im_end|>\n": the template's own EOS, none added


PROMPT, CHOSEN, REJECTED = "0123456789", "abcdef", "xyz"  # prompt ids: BOS + 10 digits = 11 tokens
P, C, R = [BOS, *ids(PROMPT)], [*ids(CHOSEN), EOS], [*ids(REJECTED), EOS]  # 11, 7, 4 tokens


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (TokenizationSettings(), (P, C, R)),
        (TokenizationSettings(max_completion_length=3), (P, C[:3], R[:3])),
        (TokenizationSettings(max_prompt_length=4, truncation_mode="keep_end"), (P[-4:], C, R)),
        (TokenizationSettings(max_prompt_length=4, truncation_mode="keep_start"), (P[:4], C, R)),
        # max_length bounds prompt + the longer completion (7): keep_end cuts the prompt's start ...
        (TokenizationSettings(max_length=12, truncation_mode="keep_end"), (P[-5:], C, R)),
        # ... keep_start keeps the whole prompt and cuts the completions' ends.
        (TokenizationSettings(max_length=13, truncation_mode="keep_start"), (P, C[:2], R[:2])),
        # Limits combine: completions to 5, prompt to its last 6, then max_length=9 leaves 4 prompt tokens.
        (
            TokenizationSettings(max_length=9, max_prompt_length=6, max_completion_length=5),
            (P[-4:], C[:5], R),
        ),
        (TokenizationSettings(max_length=18), (P, C, R)),  # fits exactly: nothing cut
    ],
)
def test_truncation(tok, settings, expected):
    pair = tokenize_pair(_rec(PROMPT, CHOSEN, REJECTED), tok, settings)
    assert (pair["prompt_ids"], pair["chosen_ids"], pair["rejected_ids"]) == expected
    assert len(pair["prompt_ids"]) + max(len(pair["chosen_ids"]), len(pair["rejected_ids"])) <= (
        settings.max_length or 10**9
    )


def test_rows_that_cannot_fit_are_reported(tok):
    records = [
        _rec("ab", "c", "d", row=1),
        _rec(PROMPT, CHOSEN, REJECTED, row=2),
        _rec("ab", "cd", "e", row=3),
    ]
    keep_start = tokenize_rows(
        records, tok, TokenizationSettings(max_length=11, truncation_mode="keep_start")
    )
    assert [r.row for r in keep_start.records] == [1, 3]
    assert len(keep_start.pairs) == 2
    ((path, row, field, message),) = keep_start.skipped
    assert (path, row, field) == ("d.jsonl", 2, "max_length")
    assert "the prompt has 11 tokens" in message
    assert "no room for the completions" in message
    keep_end = tokenize_rows(records, tok, TokenizationSettings(max_length=7, truncation_mode="keep_end"))
    assert [s.row for s in keep_end.skipped] == [2]
    assert "the longer completion has 7 tokens" in keep_end.skipped[0].message
    with pytest.raises(DataError, match=r"file d.jsonl, row 2, field 'max_length'"):
        tokenize_pair(records[1], tok, TokenizationSettings(max_length=7))


def test_batches_give_the_same_ids_as_single_rows(tok):
    records = [_rec("p" * i, "c" * (i + 1), "r" * (5 - i), row=i) for i in range(1, 5)]
    records.append(
        to_record(
            RawRow(
                {
                    "chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "a"}],
                    "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "b"}],
                },
                None,
                9,
            ),
            tokenizer=tok,
        )
    )
    batched = tokenize_rows(records, tok, batch_size=2)
    assert batched.pairs == [tokenize_pair(r, tok) for r in records]
    assert batched.records == records


def test_settings_are_serialisable_and_checked():
    settings = TokenizationSettings(max_length=512, max_prompt_length=128, truncation_mode="keep_start")
    data = json.loads(json.dumps(settings.to_dict()))
    assert data == {
        "max_length": 512,
        "max_prompt_length": 128,
        "max_completion_length": None,
        "truncation_mode": "keep_start",
    }
    assert TokenizationSettings.from_dict(data) == settings
    with pytest.raises(ConfigError, match="truncation_mode"):
        TokenizationSettings(truncation_mode="left")
    with pytest.raises(ConfigError, match="max_length"):
        TokenizationSettings(max_length=0)
    with pytest.raises(ConfigError, match="max_len"):
        TokenizationSettings.from_dict({"max_len": 3})


def test_user_data_travels_with_the_pair(tok):
    record = PreferenceRecord("a", "b", "c", user_id="u1", user_features=(1.0, 2.0), group="g")
    pair = tokenize_pair(record, tok)
    assert (pair["user_id"], pair["user_features"], pair["group"]) == ("u1", [1.0, 2.0], "g")
