"""ReferenceCache: hits do no forward pass, keys separate entries, broken entries are recomputed."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors.torch import save_file

from logprobs.lp_testlib import tiny_llama
from mixdpo.errors import ConfigError
from mixdpo.reference import ReferenceCache, ReferenceKey, default_cache_dir, sequence_score_fn
from mixdpo.reference import cache as cache_module
from reference.ref_testlib import FakeScore, preference_batches, preference_data

DATA = preference_data(6)
N = len(DATA)
KEY = ReferenceKey("fp-abc", "random:llama-tiny@seed=0", {"max_length": 64, "truncation": "keep_end"})


def test_second_call_does_no_forward_pass_and_returns_identical_tensors(tmp_path):
    model = tiny_llama(0)
    forwards = []
    model.get_decoder().register_forward_hook(lambda *args: forwards.append(1))  # the hidden path runs it
    first_cache = ReferenceCache(tmp_path)
    first = first_cache.get_or_compute(KEY, sequence_score_fn(model), preference_batches(DATA, 4), N)
    assert first_cache.stats.forward_batches == 2
    assert first_cache.stats.cache_misses == 1
    assert forwards

    forwards.clear()
    built = []
    second_cache = ReferenceCache(tmp_path)  # a fresh object, as in a second run

    def loader():
        built.append(1)
        return preference_batches(DATA, 4)

    second = second_cache.get_or_compute(KEY, sequence_score_fn(model), loader, N)
    assert second_cache.stats.forward_batches == 0
    assert second_cache.stats.cache_hits == 1
    assert forwards == []
    assert built == []  # a hit does not even build the batches
    assert torch.equal(first.chosen, second.chosen)
    assert torch.equal(first.rejected, second.rejected)


def test_entry_layout_and_meta(tmp_path):
    cache = ReferenceCache(tmp_path)
    path = cache.save(KEY, cache.get_or_compute(KEY, FakeScore(features=3), preference_batches(DATA, 4), N))
    assert path == tmp_path / "reference" / KEY.digest()
    assert sorted(p.name for p in path.iterdir()) == ["logps.safetensors", "meta.json"]
    meta = json.loads((path / "meta.json").read_text())
    assert meta["key"]["model_id"] == KEY.model_id
    assert meta["key"]["tokenization"] == {"max_length": 64, "truncation": "keep_end"}
    assert meta["num_examples"] == N
    assert meta["has_prompt_features"] is True
    assert "created_at" in meta


@pytest.mark.parametrize(
    "change",
    [
        {"dataset_fingerprint": "fp-other"},
        {"model_id": "random:llama-tiny@seed=1"},
        {"tokenization": {"max_length": 128, "truncation": "keep_end"}},
        {"num_columns": 2},
        {"average": True},
        {"extra": {"features": "mean"}},
        {"format_version": 999},
    ],
    ids=lambda change: next(iter(change)),
)
def test_each_key_part_gives_its_own_entry(tmp_path, change):
    other = dataclasses.replace(KEY, **change)
    assert other.digest() != KEY.digest()
    cache = ReferenceCache(tmp_path)
    cache.get_or_compute(KEY, FakeScore(), preference_batches(DATA, 4), N)
    score = FakeScore(num_columns=other.num_columns)
    table = cache.get_or_compute(other, score, preference_batches(DATA, 4), N)
    assert score.calls == 2  # recomputed, not served from KEY's entry
    assert table.num_columns == other.num_columns
    assert len(list((tmp_path / "reference").iterdir())) == 2


def test_key_is_canonical_and_validated():
    reordered = ReferenceKey("fp-abc", KEY.model_id, {"truncation": "keep_end", "max_length": 64})
    assert reordered.digest() == KEY.digest()
    assert len(KEY.digest()) == 64
    with pytest.raises(ConfigError, match="JSON"):
        ReferenceKey("fp", "m", {"bad": object()})
    with pytest.raises(ConfigError, match="non-empty"):
        ReferenceKey("", "m")
    with pytest.raises(ConfigError, match="num_columns"):
        ReferenceKey("fp", "m", num_columns=0)


def _truncate(path):
    data = (path / "logps.safetensors").read_bytes()
    (path / "logps.safetensors").write_bytes(data[: len(data) // 2])


def _wrong_n_in_meta(path):
    meta = json.loads((path / "meta.json").read_text())
    meta["num_examples"] = N + 1
    (path / "meta.json").write_text(json.dumps(meta))


def _wrong_n_in_tensors(path):
    save_file(
        {"chosen": torch.zeros(N - 1, 1), "rejected": torch.zeros(N - 1, 1)}, str(path / "logps.safetensors")
    )


CORRUPTIONS = {
    "no_logps": lambda path: (path / "logps.safetensors").unlink(),
    "no_meta": lambda path: (path / "meta.json").unlink(),
    "truncated_logps": _truncate,
    "garbage_meta": lambda path: (path / "meta.json").write_text("{not json"),
    "wrong_n_in_meta": _wrong_n_in_meta,
    "wrong_n_in_tensors": _wrong_n_in_tensors,
}


@pytest.mark.parametrize("corrupt", sorted(CORRUPTIONS))
def test_broken_entry_is_recomputed_not_returned(tmp_path, corrupt):
    cache = ReferenceCache(tmp_path)
    good = cache.get_or_compute(KEY, FakeScore(), preference_batches(DATA, 4), N)
    CORRUPTIONS[corrupt](cache.path(KEY))
    assert cache.load(KEY, N) is None
    score = FakeScore()
    again = cache.get_or_compute(KEY, score, preference_batches(DATA, 4), N)
    assert score.calls == 2
    assert cache.stats.invalid_entries == 2  # the load above and the one inside get_or_compute
    assert torch.equal(again.chosen, good.chosen)
    reloaded = ReferenceCache(tmp_path).load(KEY, N)  # the rewritten entry is whole again
    assert reloaded is not None
    assert torch.equal(reloaded.rejected, good.rejected)
    assert [p.name for p in (tmp_path / "reference").iterdir()] == [KEY.digest()]


def test_a_different_dataset_size_is_not_served(tmp_path):
    cache = ReferenceCache(tmp_path)
    cache.get_or_compute(KEY, FakeScore(), preference_batches(DATA, 4), N)
    assert cache.load(KEY, N - 1) is None


def test_failure_midway_leaves_no_entry_and_no_temporary_files(tmp_path):
    cache = ReferenceCache(tmp_path)
    with pytest.raises(RuntimeError, match="crashed"):
        cache.get_or_compute(KEY, FakeScore(fail_at=2), preference_batches(DATA, 2), N)
    root = tmp_path / "reference"
    assert not root.exists() or list(root.iterdir()) == []
    assert cache.load(KEY, N) is None


def test_failure_while_writing_leaves_no_half_entry(tmp_path, monkeypatch):
    def broken_save_file(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(cache_module, "save_file", broken_save_file)
    cache = ReferenceCache(tmp_path)
    with pytest.raises(OSError, match="disk full"):
        cache.get_or_compute(KEY, FakeScore(), preference_batches(DATA, 4), N)
    assert list((tmp_path / "reference").iterdir()) == []


def test_prompt_features_are_cached_and_required_on_demand(tmp_path):
    cache = ReferenceCache(tmp_path)
    cache.get_or_compute(KEY, FakeScore(), preference_batches(DATA, 4), N)
    score = FakeScore(features=5)
    table = cache.get_or_compute(
        KEY, score, preference_batches(DATA, 4), N, require_prompt_features=True
    )  # the entry without features does not satisfy the request
    assert score.calls == 2
    assert table.prompt_features.shape == (N, 5)
    hit = ReferenceCache(tmp_path).load(KEY, N, require_prompt_features=True)
    assert hit is not None
    assert torch.equal(hit.prompt_features, table.prompt_features)


def test_default_cache_dir_reads_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MIXDPO_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    assert ReferenceCache().root == tmp_path / "c" / "reference"
    monkeypatch.delenv("MIXDPO_CACHE_DIR")
    assert default_cache_dir().parts[-2:] == (".cache", "mixdpo")
