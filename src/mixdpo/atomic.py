"""Write a directory atomically: readers see the old complete version or the new complete one, never a
half-written one (a crash or Ctrl-C mid-write leaves at most a hidden temporary directory behind)."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def fsync_file(path: Path) -> None:
    """Flush one file's data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Flush every file below ``root`` to disk (so a rename after it cannot expose unwritten data)."""
    for path in Path(root).rglob("*"):
        if path.is_file():
            fsync_file(path)


def replace_dir(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``; an existing ``final`` is moved aside first (a directory cannot be
    renamed onto a non-empty one) and removed afterwards. If another process created ``final`` in between,
    theirs is kept."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name[:16]}.old-{uuid.uuid4().hex[:8]}")
        os.replace(final, old)
    try:
        os.replace(tmp, final)
    except OSError:
        if not final.exists():
            raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_directory(final: str | os.PathLike[str]) -> Iterator[Path]:
    """``with atomic_directory(path) as tmp: write into tmp`` — on success ``tmp`` becomes ``path``; on an
    exception nothing at ``path`` changes and ``tmp`` is removed."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name[:24]}.tmp-", dir=final.parent))
    try:
        yield tmp
        fsync_tree(tmp)
        replace_dir(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # already gone after a successful rename
