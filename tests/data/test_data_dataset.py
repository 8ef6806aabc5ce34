"""build_preference_dataset end to end: the report, provenance, DataLoader batches and the fingerprint."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from data_helpers import BOS, EOS, ids, make_byte_tokenizer, write_rows
from torch.utils.data import DataLoader

from mixdpo import batch as keys
from mixdpo.data import (
    PreferenceCollator,
    PreferenceDataset,
    TokenizationSettings,
    build_preference_dataset,
)
from mixdpo.errors import DataError

ROWS = [
    {
        "prompt": "Q1",
        "chosen": " yes",
        "rejected": " no",
        "user_id": "u1",
        "group": "g1",
        "age": 30,
        "x": 1.5,
    },
    {
        "prompt": "Q2",
        "chosen": " fine",
        "rejected": " bad",
        "user_id": "u2",
        "group": "g2",
        "age": 40,
        "x": 0.0,
    },
    {
        "prompt": "Q3",
        "chosen": " sure",
        "rejected": " nope",
        "user_id": "u1",
        "group": "g1",
        "age": 50,
        "x": -1,
    },
]
# The fingerprint of ROWS with default settings, pinned: it must not change between runs or machines
# (update it only together with _FINGERPRINT_VERSION when the hashed layout changes).
PINNED = "30528a07c61b010aeac34a6c123c4e3059c60667f33d78fb8ad772d1e809b451"


def _build(tmp_path, rows=ROWS, settings=None, name="d", **kwargs):
    return build_preference_dataset(write_rows(tmp_path, rows, "jsonl", name), _tok(), settings, **kwargs)


def _tok():
    return make_byte_tokenizer()


def test_build_and_iterate(tmp_path):
    dataset, report = _build(tmp_path, user_feature_columns=["age", "x"])
    assert len(dataset) == 3
    assert report.rows_read == 3
    assert not report.skipped
    assert dataset[1] == {
        "prompt_ids": [BOS, *ids("Q2")],
        "chosen_ids": [*ids(" fine"), EOS],
        "rejected_ids": [*ids(" bad"), EOS],
        "user_id": "u2",
        "user_features": [40.0, 0.0],
        "group": "g2",
        "example_index": 1,
    }
    assert dataset.source(2) == (str(tmp_path / "d.jsonl"), 3)
    assert dataset.num_user_features == 2
    collate = PreferenceCollator.from_tokenizer(
        _tok(), user_vocab=dataset.user_vocab(), group_vocab=dataset.group_vocab()
    )
    (batch,) = DataLoader(dataset, batch_size=3, collate_fn=collate)
    assert batch[keys.INPUT_IDS].shape == (6, 3 + 6)
    assert batch[keys.USER_IDS].tolist() == [0, 1, 0]
    assert batch[keys.GROUP].tolist() == [0, 1, 0]
    assert batch[keys.EXAMPLE_INDEX].tolist() == [0, 1, 2]
    assert batch[keys.USER_FEATURES].shape == (3, 2)
    assert int(batch[keys.COMPLETION_MASK][0].sum()) == len(" yes") + 1


def test_skip_invalid_and_unfit_rows_are_reported(tmp_path, caplog):
    rows = [*ROWS, {**ROWS[0], "chosen": ""}, {**ROWS[1], "prompt": "Q" * 40}]
    settings = TokenizationSettings(max_length=20, truncation_mode="keep_start")
    with pytest.raises(DataError, match=r"d.jsonl, row 4, field 'chosen'"):
        _build(tmp_path, rows, settings)
    with caplog.at_level(logging.WARNING, logger="mixdpo.data"):
        dataset, report = _build(tmp_path, rows, settings, skip_invalid=True)
    assert len(dataset) == 3
    path = str(tmp_path / "d.jsonl")
    assert [(s.path, s.row, s.field) for s in report.invalid] == [(path, 4, "chosen")]
    assert [(s.path, s.row, s.field) for s in report.unfit] == [(path, 5, "max_length")]
    assert report.summary() == "read 5 rows: 3 pairs, 1 invalid, 1 too long"
    assert "1 too long" in caplog.text
    assert "row 5" in caplog.text
    # Rows that cannot fit are left out (and reported) even without skip_invalid.
    _, strict_report = _build(tmp_path, [*ROWS, rows[-1]], settings)
    assert [s.row for s in strict_report.unfit] == [4]


def test_no_usable_rows(tmp_path):
    with pytest.raises(DataError, match=r"no usable preference pairs .*row 1, field 'max_length'"):
        _build(tmp_path, [{**ROWS[0], "prompt": "Q" * 40}], TokenizationSettings(max_length=5))


def test_unknown_users_at_evaluation(tmp_path):
    train, _ = _build(tmp_path)
    eval_rows = [{**ROWS[0], "user_id": "u3"}]
    with pytest.raises(DataError, match="user 'u3'"):
        _build(tmp_path, eval_rows, name="eval", known_users=train.user_vocab())
    evaluation, _ = _build(tmp_path, eval_rows, name="eval")
    collate = PreferenceCollator(0, user_vocab=train.user_vocab())
    assert collate([evaluation[0]])[keys.USER_IDS].tolist() == [-1]


def test_fingerprint_is_stable_and_tracks_data_and_settings(tmp_path):
    first, _ = _build(tmp_path, name="a")
    again, _ = _build(tmp_path, name="b")  # another file with the same content
    assert first.fingerprint == again.fingerprint == PINNED
    assert len(first.fingerprint) == 64
    changed_text = [{**ROWS[0], "chosen": " yes!"}, *ROWS[1:]]
    assert _build(tmp_path, changed_text, name="c")[0].fingerprint != PINNED
    assert _build(tmp_path, ROWS[::-1], name="d")[0].fingerprint != PINNED  # order is part of the cache key
    assert _build(tmp_path, settings=TokenizationSettings(max_length=100))[0].fingerprint != PINNED
    # User metadata does not change reference log-probs, so it does not change the fingerprint.
    relabelled = [{**row, "user_id": "someone", "group": "other"} for row in ROWS]
    assert _build(tmp_path, relabelled, name="e")[0].fingerprint == PINNED
    # Length prefixes: moving a token from prompt to completion changes the fingerprint.
    a = PreferenceDataset([{"prompt_ids": [1, 2], "chosen_ids": [3], "rejected_ids": [4]}])
    b = PreferenceDataset([{"prompt_ids": [1], "chosen_ids": [2, 3], "rejected_ids": [4]}])
    assert a.fingerprint != b.fingerprint


def test_settings_round_trip_through_the_fingerprint_header(tmp_path):
    settings = TokenizationSettings(max_length=64, truncation_mode="keep_start")
    dataset, _ = _build(tmp_path, settings=settings)
    assert TokenizationSettings.from_dict(json.loads(json.dumps(dataset.settings.to_dict()))) == settings
    assert isinstance(dataset[0]["example_index"], int)
    assert torch.is_tensor(PreferenceCollator(0)([dataset[0]])[keys.EXAMPLE_INDEX])
