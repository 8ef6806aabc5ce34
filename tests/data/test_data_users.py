"""User and group vocabularies: stable mapping, unknown ids, JSON round trip."""

from __future__ import annotations

import json

import pytest

from mixdpo.batch import UNKNOWN_USER
from mixdpo.data import GroupVocab, UserVocab
from mixdpo.errors import DataError


def test_user_vocab_mapping():
    vocab = UserVocab.from_labels(["carol", 7, "alice", None, "carol"])
    assert vocab.labels == ["7", "alice", "carol"]  # sorted strings: independent of row order
    assert [vocab.index(u) for u in ("7", 7, "alice", "carol")] == [0, 0, 1, 2]
    assert vocab.index("dave") == UNKNOWN_USER == -1
    assert len(vocab) == 3
    assert "alice" in vocab
    assert 7 in vocab
    assert "dave" not in vocab
    assert UserVocab.from_labels(["b", "a"]) == UserVocab.from_labels(["a", "b", "a"])


def test_save_and_load(tmp_path):
    vocab = UserVocab(["u1", "u2", "ü3"])
    path = tmp_path / "users.json"
    vocab.save(path)
    assert json.loads(path.read_text(encoding="utf-8")) == {
        "kind": "user",
        "version": 1,
        "labels": ["u1", "u2", "ü3"],
    }
    assert UserVocab.load(path) == vocab
    groups = GroupVocab(["b", "a"])
    groups.save(tmp_path / "groups.json")
    assert GroupVocab.load(tmp_path / "groups.json").index("b") == 1


def test_load_errors(tmp_path):
    GroupVocab(["a"]).save(tmp_path / "groups.json")
    with pytest.raises(DataError, match=r"not a user vocabulary .*found 'group'"):
        UserVocab.load(tmp_path / "groups.json")
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    with pytest.raises(DataError, match=r"file .*bad.json: cannot read the user vocabulary"):
        UserVocab.load(tmp_path / "bad.json")
    with pytest.raises(DataError, match="version 9"):
        UserVocab.from_dict({"kind": "user", "version": 9, "labels": []})
