"""On-disk cache of reference tables: ``<cache_dir>/reference/<sha256 of the key>/``.

Each entry holds::

    logps.safetensors   chosen [N, R], rejected [N, R] float32, optional prompt_features [N, H]
    meta.json           the key parts in clear text, N, R, creation time

Entries are written atomically (a temporary directory in the same parent, then a rename); an entry that
is incomplete or does not match its key (missing file, unreadable or truncated tensors, wrong shapes or N)
is ignored and recomputed, never returned.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from mixdpo import __version__
from mixdpo.atomic import fsync_file, replace_dir
from mixdpo.errors import ConfigError
from mixdpo.reference.table import Batch, ReferenceStats, ReferenceTable, ScoreFn, compute_reference_logps

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
CACHE_DIR_ENV = "MIXDPO_CACHE_DIR"
LOGPS_FILE = "logps.safetensors"
META_FILE = "meta.json"


def default_cache_dir() -> Path:
    """``$MIXDPO_CACHE_DIR`` if set, else ``~/.cache/mixdpo``."""
    return Path(os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "mixdpo").expanduser()


@dataclass(frozen=True)
class ReferenceKey:
    """Everything that determines a reference table; any change gives a different cache entry.

    Attributes:
        dataset_fingerprint: identifies the tokenized examples and their order (``Dataset._fingerprint``
            or a hash of the token ids).
        model_id: identifies the reference model(s), e.g. ``random:llama-tiny@seed=0`` or a path@revision.
        tokenization: settings that change the token ids (max_length, truncation mode, chat template...).
        num_columns: R, 1 for a shared reference or K for per-expert references.
        average: whether log-probs are averaged over completion tokens instead of summed.
        extra: anything else the caller's ``score_fn`` depends on (e.g. how prompt features are pooled).
        format_version: on-disk format; bumped when the layout or the meaning of the values changes.
    """

    dataset_fingerprint: str
    model_id: str
    tokenization: Mapping[str, Any] = field(default_factory=dict)
    num_columns: int = 1
    average: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        for name in ("dataset_fingerprint", "model_id"):
            if not (isinstance(getattr(self, name), str) and getattr(self, name)):
                # An empty identity would let different datasets / models share one entry.
                raise ConfigError(name, f"must be a non-empty string, got {getattr(self, name)!r}")
        if not (isinstance(self.num_columns, int) and self.num_columns >= 1):
            raise ConfigError("num_columns", f"must be an integer >= 1, got {self.num_columns!r}")
        try:
            self.canonical_json()
        except (TypeError, ValueError) as err:
            raise ConfigError("reference key", f"parts must be JSON-serialisable: {err}") from err

    def parts(self) -> dict[str, Any]:
        """The key parts as plain JSON types (what ``meta.json`` stores under ``key``)."""
        return json.loads(self.canonical_json())

    def canonical_json(self) -> str:
        """Sorted keys, no whitespace, no NaN: the same parts always give the same bytes."""
        raw = {
            "dataset_fingerprint": self.dataset_fingerprint,
            "model_id": self.model_id,
            "tokenization": dict(self.tokenization),
            "num_columns": self.num_columns,
            "average": bool(self.average),
            "extra": dict(self.extra),
            "format_version": self.format_version,
        }
        return json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)

    def digest(self) -> str:
        """sha256 hex digest of :meth:`canonical_json`: the entry's directory name."""
        return hashlib.sha256(self.canonical_json().encode("ascii")).hexdigest()


BatchSource = Iterable[Batch] | Callable[[], Iterable[Batch]]


class ReferenceCache:
    """Loads a reference table from ``<cache_dir>/reference/<key>/`` or computes and saves it.

    ``stats`` counts hits, misses and reference forward passes. In distributed training let one process
    compute and save (or merge the shards and :meth:`save`), then the others :meth:`load` after a barrier.
    """

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None, stats: ReferenceStats | None = None):
        self.root = Path(cache_dir if cache_dir is not None else default_cache_dir()) / "reference"
        self.stats = stats if stats is not None else ReferenceStats()

    def path(self, key: ReferenceKey) -> Path:
        return self.root / key.digest()

    def load(
        self, key: ReferenceKey, num_examples: int, *, require_prompt_features: bool = False
    ) -> ReferenceTable | None:
        """The cached table, or None when there is no valid entry (an invalid one is logged, not returned)."""
        entry = self.path(key)
        if not entry.exists():
            return None
        try:
            table = _read_entry(entry, key, num_examples)
        except Exception as err:  # any unreadable / inconsistent entry is recomputed
            self.stats.invalid_entries += 1
            logger.warning("ignoring invalid reference cache entry %s: %s", entry, err)
            return None
        if require_prompt_features and table.prompt_features is None:
            return None
        return table

    def save(self, key: ReferenceKey, table: ReferenceTable) -> Path:
        """Write the entry atomically (complete or absent, never half-written); returns its directory."""
        if table.num_columns != key.num_columns:
            raise ValueError(f"table has {table.num_columns} columns but the key says {key.num_columns}")
        if torch.isnan(table.chosen).any() or torch.isnan(table.rejected).any():
            raise ValueError("table has unscored (NaN) rows; merge all shards before saving")
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.path(key)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name[:16]}.tmp-", dir=self.root))
        try:
            tensors = {"chosen": table.chosen, "rejected": table.rejected}
            if table.prompt_features is not None:
                tensors["prompt_features"] = table.prompt_features
            save_file({k: v.float().contiguous() for k, v in tensors.items()}, str(tmp / LOGPS_FILE))
            meta = {
                "key": key.parts(),
                "digest": key.digest(),
                "num_examples": len(table),
                "num_columns": table.num_columns,
                "has_prompt_features": table.prompt_features is not None,
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "mixdpo_version": __version__,
            }
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
            for name in (LOGPS_FILE, META_FILE):
                fsync_file(tmp / name)
            replace_dir(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # gone already after a successful rename
        return final

    def get_or_compute(
        self,
        key: ReferenceKey,
        score_fn: ScoreFn,
        batches: BatchSource,
        num_examples: int,
        *,
        require_prompt_features: bool = False,
    ) -> ReferenceTable:
        """Load the entry for ``key``, or compute it with :func:`compute_reference_logps` and save it.

        ``batches`` may be a zero-argument callable so that a cache hit does not even build the loader.
        """
        table = self.load(key, num_examples, require_prompt_features=require_prompt_features)
        if table is not None:
            self.stats.cache_hits += 1
            return table
        self.stats.cache_misses += 1
        logger.info("computing reference log-probs of %d pairs (cache %s)", num_examples, self.root)
        source = batches() if callable(batches) else batches
        table = compute_reference_logps(
            score_fn, source, num_examples, num_columns=key.num_columns, stats=self.stats
        )
        if require_prompt_features and table.prompt_features is None:
            raise ValueError("require_prompt_features=True but score_fn returned no prompt features")
        self.save(key, table)
        return table


def _read_entry(entry: Path, key: ReferenceKey, num_examples: int) -> ReferenceTable:
    meta = json.loads((entry / META_FILE).read_text())
    if meta.get("key") != key.parts():
        raise ValueError("meta.json key parts differ from the requested key")
    if meta.get("num_examples") != num_examples:
        raise ValueError(f"entry has {meta.get('num_examples')} examples, the dataset {num_examples}")
    tensors = load_file(str(entry / LOGPS_FILE))
    shape = (num_examples, key.num_columns)
    for name in ("chosen", "rejected"):
        t = tensors[name]
        if t.dtype != torch.float32 or tuple(t.shape) != shape or torch.isnan(t).any():
            raise ValueError(f"{name} is {t.dtype} {tuple(t.shape)} (NaN: {bool(torch.isnan(t).any())})")
    if meta.get("has_prompt_features") != ("prompt_features" in tensors):
        raise ValueError("prompt_features presence disagrees with meta.json")
    return ReferenceTable(tensors["chosen"], tensors["rejected"], tensors.get("prompt_features"))
