"""Validation: every problem names file, row and field and says what to do; skip_invalid reports and skips."""

from __future__ import annotations

import contextlib
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixdpo.data import ColumnSpec, SkippedRow, UserVocab, load_preference_rows, validate_rows
from mixdpo.errors import DataError

GOOD = {"prompt": "Q:", "chosen": " yes", "rejected": " no"}
USER = [{"role": "user", "content": "Hi?"}]


def _write(tmp_path, rows, name="rows.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _problem(tmp_path, rows, **kwargs) -> tuple[str, str]:
    """Validate rows (written as JSONL) expecting a DataError; returns (message, path)."""
    path = _write(tmp_path, rows)
    with pytest.raises(DataError) as info:
        validate_rows(load_preference_rows(path), **kwargs)
    return str(info.value), str(path)


CASES = [
    # (rows, row number, field, words the message must contain)
    (
        [GOOD, {"prompt": "Q:", "rejected": " no"}],
        2,
        "chosen",
        ["missing required column 'chosen'", "['prompt', 'rejected']"],
    ),
    ([{**GOOD, "chosen": "   "}], 1, "chosen", ["empty or only whitespace"]),
    ([{**GOOD, "rejected": None}], 1, "rejected", ["missing (null or an empty cell)"]),
    ([{**GOOD, "chosen": 3}], 1, "chosen", ["expected text", "got int 3"]),
    ([{**GOOD, "prompt": ["a", "b"]}], 1, "prompt", ["message 1 is not a"]),
    ([{**GOOD, "rejected": " yes"}], 1, "rejected", ["identical"]),
    ([{"chosen": "Yes.", "rejected": "No."}], 1, "prompt", ["share no beginning", "add a prompt column"]),
    ([{"chosen": "Q: a", "rejected": "Q: a b"}], 1, "chosen", ["one is a prefix of the other"]),
    (
        [
            {
                "prompt": [{"role": "bot", "content": "Hi?"}],
                "chosen": [{"role": "assistant", "content": "a"}],
                "rejected": [{"role": "assistant", "content": "b"}],
            }
        ],
        1,
        "prompt",
        ["message 1 has role 'bot'", "system, user, assistant, tool"],
    ),
    (
        [
            {
                "prompt": USER,
                "chosen": [{"role": "assistant", "content": 5}],
                "rejected": [{"role": "assistant", "content": "b"}],
            }
        ],
        1,
        "chosen",
        ["message 1 has content of type int"],
    ),
    (
        [
            {
                "prompt": [{"role": "system", "content": "Be kind."}],
                "chosen": [{"role": "assistant", "content": "a"}],
                "rejected": [{"role": "assistant", "content": "b"}],
            }
        ],
        1,
        "prompt",
        ["last message is from 'system'"],
    ),
    (
        [{"prompt": USER, "chosen": [{"role": "assistant", "content": "a"}], "rejected": "b"}],
        1,
        "rejected",
        ["both be text or both be lists of messages"],
    ),
    ([{**GOOD, "prompt": USER}], 1, "prompt", ["the prompt is a list of messages but chosen is text"]),
    ([{**GOOD, "user_features": [1.0, float("nan")]}], 1, "user_features", ["feature 2 is nan", "finite"]),
    ([{**GOOD, "user_features": [float("inf")]}], 1, "user_features", ["feature 1 is inf"]),
    ([{**GOOD, "user_features": [1, "abc"]}], 1, "user_features", ["feature 2 is 'abc', not a number"]),
    ([{**GOOD, "user_features": [True]}], 1, "user_features", ["not a number"]),
    ([{**GOOD, "user_features": [10**400]}], 1, "user_features", ["not a number"]),
    ([{**GOOD, "user_features": []}], 1, "user_features", ["empty"]),
    (
        [{**GOOD, "user_features": [1, 2]}, {**GOOD, "user_features": [1, 2, 3]}],
        2,
        "user_features",
        ["has 3 user features but row 1 of", "has 2"],
    ),
    ([{**GOOD, "user_id": 1.5}], 1, "user_id", ["string or an integer", "got float"]),
    ([{**GOOD, "user_id": True}], 1, "user_id", ["string or an integer"]),
    ([{**GOOD, "user_id": "a"}, GOOD], 2, "user_id", ["user id is missing", "other rows have one"]),
    ([{**GOOD, "group": ["g"]}], 1, "group", ["group label must be a string or an integer"]),
]


@pytest.mark.parametrize(("rows", "row", "field", "words"), CASES)
def test_problem_names_file_row_field_and_fix(tmp_path, rows, row, field, words):
    message, path = _problem(tmp_path, rows)
    assert message.startswith(f"file {path}, row {row}, field '{field}': "), message
    for word in words:
        assert word in message, message


def test_unknown_user_at_evaluation(tmp_path):
    known = UserVocab(["u1", "u2"])
    message, path = _problem(
        tmp_path, [{**GOOD, "user_id": "u1"}, {**GOOD, "user_id": "u9"}], known_users=known
    )
    assert message.startswith(f"file {path}, row 2, field 'user_id'")
    assert "user 'u9' is not among the 2 users of the training data" in message
    assert "UNKNOWN_USER" in message
    # Without known users, unseen ids are fine (they map to UNKNOWN_USER later).
    valid, _ = validate_rows(load_preference_rows(_write(tmp_path, [{**GOOD, "user_id": 9}])))
    assert len(valid) == 1


def test_feature_columns(tmp_path):
    columns = ColumnSpec(user_feature_columns=["age", "score"])
    rows = [{**GOOD, "age": 30, "score": "0.5"}, {**GOOD, "age": "old", "score": 1}, {**GOOD, "score": 1}]
    path = _write(tmp_path, rows)
    valid, skipped = validate_rows(load_preference_rows(path), columns=columns, skip_invalid=True)
    assert [r.row for r in valid] == [1]
    assert skipped[0] == SkippedRow(
        str(path), 2, "age", "the value is 'old', not a number; user features must be numbers"
    )
    assert skipped[1].field == "age"
    assert "missing user feature column 'age'" in skipped[1].message


def test_renamed_columns(tmp_path):
    columns = ColumnSpec(prompt="question", chosen="good", rejected="bad", user_id="who")
    rows = [{"question": "Q:", "good": " a", "bad": " b", "who": 3}]
    valid, _ = validate_rows(load_preference_rows(rows), columns=columns)
    assert len(valid) == 1
    with pytest.raises(
        DataError, match=r"field 'good': missing required column 'good'.*ColumnSpec\(chosen=...\)"
    ):
        validate_rows(load_preference_rows([GOOD]), columns=columns)


def test_skip_invalid_reports_and_skips(tmp_path):
    rows = [
        GOOD,
        {**GOOD, "chosen": ""},
        GOOD,
        {**GOOD, "rejected": 7},
        {**GOOD, "chosen": " x", "rejected": " x"},
        GOOD,
    ]
    path = _write(tmp_path, rows)
    loaded = load_preference_rows(path)
    with pytest.raises(DataError, match="row 2"):
        validate_rows(loaded)
    valid, skipped = validate_rows(loaded, skip_invalid=True)
    assert [r.row for r in valid] == [1, 3, 6]
    assert [(s.path, s.row, s.field) for s in skipped] == [
        (str(path), 2, "chosen"),
        (str(path), 4, "rejected"),
        (str(path), 5, "rejected"),
    ]
    assert "empty or only whitespace" in skipped[0].message
    assert not skipped[0].message.startswith("file")
    assert str(skipped[1]).startswith(f"file {path}, row 4, field 'rejected': expected text")


def test_nan_from_pandas_is_a_missing_value():
    import pandas as pd

    frame = pd.DataFrame([{**GOOD, "user_id": "a"}, {**GOOD, "user_id": None}])
    with pytest.raises(DataError, match="row 2, field 'user_id': the user id is missing"):
        validate_rows(load_preference_rows(frame))
    assert math.isnan(
        load_preference_rows(pd.DataFrame([GOOD, {"chosen": "a", "rejected": "b"}]))[1].data["prompt"]
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["role", "content", "x"]), inner)
    ),
    max_leaves=8,
)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["prompt", "chosen", "rejected", "user_id", "user_features", "group"]),
            json_values,
        ),
        min_size=1,
        max_size=4,
    )
)
def test_random_rows_only_ever_raise_data_error(rows):
    with contextlib.suppress(DataError):
        validate_rows(load_preference_rows(rows))
    valid, skipped = validate_rows(load_preference_rows(rows), skip_invalid=True)
    assert len(valid) + len(skipped) == len(rows)
