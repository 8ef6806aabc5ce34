"""The collator: exact tensors for right and left padding, optional keys, and a property test on the masks."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mixdpo import batch as keys
from mixdpo.batch import UNKNOWN_USER
from mixdpo.data import GroupVocab, PreferenceCollator, UserVocab
from mixdpo.errors import ConfigError, DataError

PAD = 0
PAIRS = [
    {"prompt_ids": [1, 2], "chosen_ids": [3], "rejected_ids": [4, 5, 6], "example_index": 7},
    {"prompt_ids": [8], "chosen_ids": [9, 10], "rejected_ids": [11], "example_index": 2},
]


def test_right_padding_exact():
    out = PreferenceCollator(PAD, padding_side="right")(PAIRS)
    t = torch.tensor
    assert torch.equal(
        out[keys.INPUT_IDS], t([[1, 2, 3, 0, 0], [8, 9, 10, 0, 0], [1, 2, 4, 5, 6], [8, 11, 0, 0, 0]])
    )
    assert torch.equal(
        out[keys.ATTENTION_MASK], t([[1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    )
    assert torch.equal(
        out[keys.COMPLETION_MASK], t([[0, 0, 1, 0, 0], [0, 1, 1, 0, 0], [0, 0, 1, 1, 1], [0, 1, 0, 0, 0]])
    )
    assert torch.equal(out[keys.PROMPT_INPUT_IDS], t([[1, 2], [8, 0]]))
    assert torch.equal(out[keys.PROMPT_ATTENTION_MASK], t([[1, 1], [1, 0]]))
    assert torch.equal(out[keys.EXAMPLE_INDEX], t([7, 2]))
    assert all(v.dtype == torch.long for v in out.values())
    assert set(out) == {
        keys.INPUT_IDS, keys.ATTENTION_MASK, keys.COMPLETION_MASK, keys.PROMPT_INPUT_IDS,
        keys.PROMPT_ATTENTION_MASK, keys.EXAMPLE_INDEX,
    }  # fmt: skip


def test_left_padding_exact():
    out = PreferenceCollator(PAD, padding_side="left", pad_to_multiple_of=4)(PAIRS)
    t = torch.tensor
    assert torch.equal(
        out[keys.INPUT_IDS],
        t(
            [
                [0, 0, 0, 0, 0, 1, 2, 3],
                [0, 0, 0, 0, 0, 8, 9, 10],
                [0, 0, 0, 1, 2, 4, 5, 6],
                [0, 0, 0, 0, 0, 0, 8, 11],
            ]
        ),
    )
    assert torch.equal(
        out[keys.COMPLETION_MASK],
        t(
            [
                [0, 0, 0, 0, 0, 0, 0, 1],
                [0, 0, 0, 0, 0, 0, 1, 1],
                [0, 0, 0, 0, 0, 1, 1, 1],
                [0, 0, 0, 0, 0, 0, 0, 1],
            ]
        ),
    )
    assert torch.equal(out[keys.ATTENTION_MASK], (out[keys.INPUT_IDS] != 0).long())
    assert torch.equal(out[keys.PROMPT_INPUT_IDS], t([[0, 0, 1, 2], [0, 0, 0, 8]]))
    assert torch.equal(out[keys.PROMPT_ATTENTION_MASK], t([[0, 0, 1, 1], [0, 0, 0, 1]]))


def test_users_features_and_groups():
    pairs = [
        {**PAIRS[0], "user_id": "bob", "user_features": [1.0, 2.0], "group": "b"},
        {**PAIRS[1], "user_id": "zed", "user_features": [3, 4], "group": "a"},
    ]
    collate = PreferenceCollator(
        PAD, user_vocab=UserVocab(["bob", "amy"]), group_vocab=GroupVocab(["a", "b"])
    )
    out = collate(pairs)
    assert out[keys.USER_IDS].tolist() == [1, UNKNOWN_USER]  # sorted: amy=0, bob=1; zed unseen
    assert out[keys.GROUP].tolist() == [1, 0]
    assert out[keys.USER_FEATURES].dtype == torch.float32
    assert out[keys.USER_FEATURES].tolist() == [
        [1, 2],
        [3, 4],
    ]
    # Without vocabularies, ids and groups (strings) are not turned into tensors.
    assert keys.USER_IDS not in PreferenceCollator(PAD)(pairs)
    assert keys.GROUP not in PreferenceCollator(PAD)(pairs)


def test_collator_errors():
    with pytest.raises(DataError, match="have no 'user_id'"):
        PreferenceCollator(PAD, user_vocab=UserVocab(["a"]))(PAIRS)
    with pytest.raises(DataError, match="some pairs in the batch have 'user_features'"):
        PreferenceCollator(PAD)([{**PAIRS[0], "user_features": [1.0]}, PAIRS[1]])
    with pytest.raises(ConfigError, match="padding_side"):
        PreferenceCollator(PAD, padding_side="middle")
    with pytest.raises(ValueError, match="empty"):
        PreferenceCollator(PAD)([])


def test_from_tokenizer_pads_with_pad_or_eos(tok):
    assert PreferenceCollator.from_tokenizer(tok).pad_token_id == tok.pad_token_id
    collate = PreferenceCollator.from_tokenizer(tok, padding_side="left")
    assert collate.padding_side == "left"


lengths = st.lists(st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)), min_size=1, max_size=5)


@settings(max_examples=100, deadline=None)
@given(lengths, st.sampled_from(["right", "left"]), st.sampled_from([None, 1, 8]))
def test_masks_cover_exactly_the_right_tokens(shape, side, multiple):
    # Token values encode (pair, part, position) so every token can be traced back.
    pairs = [
        {
            "prompt_ids": [1000 * i + 100 + j for j in range(p)],
            "chosen_ids": [1000 * i + 200 + j for j in range(c)],
            "rejected_ids": [1000 * i + 300 + j for j in range(r)],
        }
        for i, (p, c, r) in enumerate(shape)
    ]
    out = PreferenceCollator(-1, padding_side=side, pad_to_multiple_of=multiple)(pairs)
    b = len(pairs)
    ids, attention, completion = out[keys.INPUT_IDS], out[keys.ATTENTION_MASK], out[keys.COMPLETION_MASK]
    assert ids.shape[0] == 2 * b
    assert ids.shape[1] % (multiple or 1) == 0
    for row in range(2 * b):
        pair = pairs[row % b]
        completion_ids = pair["chosen_ids"] if row < b else pair["rejected_ids"]  # chosen rows first
        assert ids[row][attention[row].bool()].tolist() == pair["prompt_ids"] + completion_ids
        assert ids[row][completion[row].bool()].tolist() == completion_ids
        assert (ids[row][~attention[row].bool()] == -1).all()
        real = attention[row].nonzero().flatten()
        assert real.tolist() == list(range(int(real[0]), int(real[-1]) + 1))  # contiguous
        assert (int(real[0]) == 0) if side == "right" else (int(real[-1]) == ids.shape[1] - 1)
    prompt_ids, prompt_mask = out[keys.PROMPT_INPUT_IDS], out[keys.PROMPT_ATTENTION_MASK]
    for i, pair in enumerate(pairs):
        assert prompt_ids[i][prompt_mask[i].bool()].tolist() == pair["prompt_ids"]
