"""Stable identity strings for loaded weights, used as part of on-disk cache keys (reference log-probs).

Two loads share an identity only if they give the same weights in the same dtype. The digests are cheap:
random models hash their (small) tensors; files on disk are identified by name, size and modification
time rather than read in full; the built-in model reuses the sha256 computed once at conversion time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import torch

DIGEST_CHARS = 12

# Files whose change can change what a model computes: weights, their index, config and tokenizer.
_RELEVANT_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".gguf",
    ".model",
    ".json",
    ".txt",
    ".jinja",
)


def short_digest(hasher: hashlib._Hash) -> str:
    """The first :data:`DIGEST_CHARS` hex characters of ``hasher``'s digest."""
    return hasher.hexdigest()[:DIGEST_CHARS]


def with_dtype(identity: str, dtype: torch.dtype) -> str:
    """Append the dtype unless it is float32 (the dtype the weights are defined in): ``...~bfloat16``."""
    return identity if dtype == torch.float32 else f"{identity}~{str(dtype).removeprefix('torch.')}"


def state_dict_digest(model: torch.nn.Module) -> str:
    """Hash every tensor's name, dtype, shape and bytes; meant for small (random) models only."""
    hasher = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        data = tensor.detach().to("cpu").contiguous()
        hasher.update(f"{name}:{data.dtype}:{tuple(data.shape)};".encode())
        # A byte view works for every dtype (numpy has no bfloat16).
        hasher.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return short_digest(hasher)


def file_stats_digest(files: Iterable[Path], contents_of: Iterable[Path] = ()) -> str:
    """Hash the names, sizes and modification times of ``files`` plus the full bytes of ``contents_of``.

    Reading sizes and mtimes is instant even for multi-gigabyte checkpoints; small files whose content
    matters (config.json) are hashed in full so an in-place edit with a preserved mtime is still seen.
    """
    hasher = hashlib.sha256()
    for path in sorted(Path(p) for p in files):
        stat = path.stat()
        hasher.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    for path in sorted(Path(p) for p in contents_of):
        hasher.update(path.name.encode() + b"=" + path.read_bytes())
    return short_digest(hasher)


def directory_digest(directory: Path) -> str:
    """Digest of a checkpoint directory: the stats of its weight/config/tokenizer files and config.json."""
    files = [p for p in directory.iterdir() if p.is_file() and p.suffix in _RELEVANT_SUFFIXES]
    config = directory / "config.json"
    return file_stats_digest(files, [config] if config.is_file() else [])


def file_sha256(path: Path, chunk_bytes: int = 1 << 22) -> str:
    """Full sha256 hex digest of a file, read in chunks (~0.3 s per 100 MB)."""
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            hasher.update(chunk)
    return hasher.hexdigest()
