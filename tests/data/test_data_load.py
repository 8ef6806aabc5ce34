"""Loading rows from every source type: provenance, the four TRL formats, and errors that name the row."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import datasets
import pandas as pd
import pytest
from data_helpers import FILE_KINDS, write_rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixdpo.data import ColumnSpec, load_preference_rows, to_record, validate_rows
from mixdpo.data.formats import detect_optional_columns
from mixdpo.errors import DataError


def _msg(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


SKY = [_msg("user", "What color is the sky?")]
SEA = [_msg("system", "Be brief."), _msg("user", "And the sea, today?")]
META = [
    {"user_id": "u1", "group": "g1", "user_features": [0.5, -1.0]},
    {"user_id": "u2", "group": "g2", "user_features": [1.5, 2.0]},
]

# The same two pairs in TRL's four formats; commas, quotes and a line break stress CSV quoting.
FORMATS = {
    "text_explicit": [
        {"prompt": "The sky is", "chosen": " blue.", "rejected": " green."},
        {"prompt": 'Say "hi",\nthen', "chosen": " stop.", "rejected": " go on, and on."},
    ],
    "text_implicit": [
        {"chosen": "The sky is blue.", "rejected": "The sky is green."},
        {"chosen": 'Say "hi",\nthen stop.', "rejected": 'Say "hi",\nthen go on, and on.'},
    ],
    "chat_explicit": [
        {"prompt": SKY, "chosen": [_msg("assistant", "Blue.")], "rejected": [_msg("assistant", "Green.")]},
        {"prompt": SEA, "chosen": [_msg("assistant", "Blue, too.")], "rejected": [_msg("assistant", "Red.")]},
    ],
    "chat_implicit": [
        {"chosen": [*SKY, _msg("assistant", "Blue.")], "rejected": [*SKY, _msg("assistant", "Green.")]},
        {"chosen": [*SEA, _msg("assistant", "Blue, too.")], "rejected": [*SEA, _msg("assistant", "Red.")]},
    ],
}


def _records(source, tok):
    rows = load_preference_rows(source)
    valid, skipped = validate_rows(rows)
    assert not skipped
    optional = detect_optional_columns(valid, ColumnSpec())
    return rows, [to_record(r, tokenizer=tok, optional=optional) for r in valid]


def _content(record):
    """A record without its provenance, for comparing the same pair read from different sources."""
    return (record.prompt, record.chosen, record.rejected, record.user_id, record.user_features, record.group)


@pytest.mark.parametrize("kind", FILE_KINDS)
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_from_every_file_type(tmp_path, tok, kind, fmt):
    rows = [{**pair, **meta} for pair, meta in zip(FORMATS[fmt], META, strict=True)]
    path = write_rows(tmp_path, rows, kind)
    loaded, records = _records(path, tok)
    _, expected = _records(rows, tok)  # the same rows from memory
    assert [_content(r) for r in records] == [_content(r) for r in expected]
    assert [r.path for r in loaded] == [str(path)] * 2
    # The implicit form reads exactly like the explicit one.
    explicit = fmt.replace("implicit", "explicit")
    _, from_explicit = _records([{**p, **m} for p, m in zip(FORMATS[explicit], META, strict=True)], tok)
    assert [_content(r) for r in records] == [_content(r) for r in from_explicit]
    assert records[0].user_id == "u1"
    assert records[0].group == "g1"
    assert records[0].user_features == (0.5, -1.0)
    assert records[0].is_chat == fmt.startswith("chat")


@pytest.mark.parametrize(
    ("kind", "expected_rows"),
    # JSONL and CSV number rows by the line they start on (blank lines, headers and multi-line cells count).
    [("jsonl", [1, 3]), ("csv", [2, 4]), ("json", [1, 2]), ("parquet", [1, 2]), ("dataset_dir", [1, 2])],
)
def test_row_numbers(tmp_path, kind, expected_rows):
    rows = FORMATS["text_explicit"]
    path = write_rows(tmp_path, rows, kind)
    if kind == "jsonl":  # a blank line between the rows
        path.write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n", encoding="utf-8")
    if kind == "csv":  # row 1's prompt spans lines 2-3, so row 2 starts on line 4
        path.write_text(
            'prompt,chosen,rejected\n"a\nb",c,d\ne,f,g\n',
            encoding="utf-8",
        )
    assert [r.row for r in load_preference_rows(path)] == expected_rows


def test_csv_cells(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(
        'prompt,chosen,rejected,user_id,note\n[INST] hi,"[1, 2]",no,7,\n',
        encoding="utf-8-sig",  # a BOM, as Excel writes it
    )
    (row,) = load_preference_rows(path)
    # Text that only looks like JSON stays text; ids stay strings; empty cells are missing.
    assert row.data == {
        "prompt": "[INST] hi",
        "chosen": "[1, 2]",
        "rejected": "no",
        "user_id": "7",
        "note": None,
    }


def test_json_shapes(tmp_path):
    rows = FORMATS["text_explicit"]
    single = tmp_path / "single.json"
    single.write_text(json.dumps({"train": rows}), encoding="utf-8")
    assert [r.data for r in load_preference_rows(single)] == rows
    several = tmp_path / "several.json"
    several.write_text(json.dumps({"train": rows, "test": rows[:1]}), encoding="utf-8")
    assert len(load_preference_rows(several, split="test")) == 1
    with pytest.raises(DataError, match="split=<name>"):
        load_preference_rows(several)
    lone = tmp_path / "lone.json"
    lone.write_text(json.dumps(FORMATS["chat_explicit"][0]), encoding="utf-8")
    with pytest.raises(DataError, match="a single JSON object, not a list of rows"):
        load_preference_rows(lone)
    lines = tmp_path / "lines.json"  # what datasets' Dataset.to_json writes
    datasets.Dataset.from_list(rows).to_json(str(lines))
    assert [r.data for r in load_preference_rows(lines)] == rows


def test_datasetdict_splits(tmp_path):
    rows = FORMATS["text_explicit"]
    path = tmp_path / "dd"
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(rows), "test": datasets.Dataset.from_list(rows[:1])}
    ).save_to_disk(str(path))
    train = load_preference_rows(path)
    assert len(train) == 2
    assert train[0].path == f"{path}[train]"
    assert len(load_preference_rows(path, split="test")) == 1
    with pytest.raises(DataError, match=r"no split 'dev'.*'train'"):
        load_preference_rows(path, split="dev")


def test_in_memory_sources():
    rows = FORMATS["text_explicit"]
    for source in (rows, datasets.Dataset.from_list(rows), pd.DataFrame(rows)):
        loaded = load_preference_rows(source)
        assert [r.data for r in loaded] == rows
        assert [r.row for r in loaded] == [1, 2]
        assert loaded[0].path is None


def _error(path, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        load_preference_rows(path, **kwargs)
    return str(info.value)


def test_invalid_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"chosen": "a", "rejected": "b"}\n{"chosen": "a",\n', encoding="utf-8")
    message = _error(path)
    assert f"file {path}, row 2" in message
    assert "invalid JSON" in message


def test_json_line_that_is_not_an_object(tmp_path):
    path = tmp_path / "list.jsonl"
    path.write_text('["a", "b"]\n', encoding="utf-8")
    assert "row 1" in _error(path)
    assert "got a JSON array" in _error(path)


def test_not_utf8(tmp_path):
    for name, content in (
        ("x.jsonl", b'{"a": 1}\n{"chosen": "caf\xe9"}\n'),
        ("x.csv", b"a,b\nc,d\ncaf\xe9,x\n"),
    ):
        path = tmp_path / name
        path.write_bytes(content)
        message = _error(path)
        assert f"file {path}, row {2 if name.endswith('jsonl') else 3}" in message
        assert "not valid UTF-8" in message
        assert "re-save the file as UTF-8" in message


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("e.jsonl", ""),
        ("e.jsonl", "\n\n"),
        ("e.json", ""),
        ("e.json", "[]"),
        ("e.csv", ""),
        ("e.csv", "a,b\n"),
    ],
)
def test_empty_files(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    assert "has no rows" in _error(path)


def test_unknown_extension_and_missing_file(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("hello", encoding="utf-8")
    message = _error(path)
    assert "unsupported file type '.txt'" in message
    assert ".jsonl" in message
    assert "no such file" in _error(tmp_path / "missing.jsonl")
    assert "not a dataset written by datasets' save_to_disk" in _error(tmp_path)


def test_hub_name_when_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message = _error("someone/preferences")
    assert "file someone/preferences" in message
    assert "no such file or directory" in message
    assert "Hub access is offline" in message


def test_hub_name_when_online(monkeypatch):
    """Online, a name that is no local path goes to datasets.load_dataset (stubbed: no network in tests)."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    calls = []

    def fake_load_dataset(name, split=None):
        calls.append((name, split))
        train = datasets.Dataset.from_list(FORMATS["text_explicit"])
        return train if split else datasets.DatasetDict({"train": train, "test": train})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    rows = load_preference_rows("someone/preferences")
    assert calls == [("someone/preferences", None)]
    assert [r.path for r in rows] == ["hf://datasets/someone/preferences[train]"] * 2
    assert (
        load_preference_rows("someone/preferences", split="test")[0].path
        == "hf://datasets/someone/preferences[test]"
    )

    def failing_load_dataset(name, split=None):
        raise FileNotFoundError(f"Dataset '{name}' doesn't exist on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", failing_load_dataset)
    with pytest.raises(
        DataError, match=r"file nobody/nothing: neither a local file nor a loadable Hub dataset"
    ):
        load_preference_rows("nobody/nothing")


def test_csv_with_wrong_number_of_values(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("prompt,chosen,rejected\na,b,c\nd,e,f,g\n", encoding="utf-8")
    message = _error(path)
    assert "row 3" in message
    assert "4 values but the header has 3 columns" in message


def test_json_item_that_is_not_an_object(tmp_path):
    path = tmp_path / "items.json"
    path.write_text(json.dumps([{"chosen": "a", "rejected": "b"}, "oops"]), encoding="utf-8")
    assert "row 2" in _error(path)
    assert "list item 2 is a JSON string" in _error(path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=300),
        st.lists(
            st.sampled_from([b"{", b"}", b"[", b'"a"', b":", b",", b"\n", b"\xff", b"1", b"null"]),
            max_size=60,
        ).map(b"".join),
    )
)
def test_random_bytes_only_ever_raise_data_error(content):
    """Whatever a .jsonl file holds, loading and validating it either works or raises DataError."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "random.jsonl"
        path.write_bytes(content)
        try:
            rows = load_preference_rows(path)
            validate_rows(rows, skip_invalid=True)
        except DataError:
            pass
