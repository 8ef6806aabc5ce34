"""Read preference rows from files, saved datasets, in-memory data or the Hugging Face Hub.

:func:`load_preference_rows` only reads: it returns every row as a :class:`~mixdpo.data.rows.RawRow`
with its provenance and leaves checking the columns to :mod:`mixdpo.data.validate`. Anything that
cannot be read raises :class:`~mixdpo.errors.DataError` naming the file, the row and what to do.

Sources and how their rows are numbered (1-based, as a text editor or spreadsheet shows them):

- ``*.jsonl``: one JSON object per line; row = line number (blank lines are skipped).
- ``*.json``: a top-level list of objects (row = position in the list); an object holding one list of
  row objects (``{"train": [...]}``; with several lists, ``split`` picks one); or JSON Lines, which is
  what ``datasets.Dataset.to_json`` writes (row = line number).
- ``*.csv``: a header line, then one record per row; row = the line the record starts on (the header is
  line 1). Empty cells are missing values; a cell holding a JSON list of messages
  (``[{"role": ..., "content": ...}]``) is decoded; every other cell stays text.
- ``*.parquet``: row = position in the table.
- a directory written by ``save_to_disk``: a ``Dataset``, or a ``DatasetDict`` (``split`` picks the split;
  default: its only split, else ``"train"``); row = position.
- in memory: a list of dicts, a ``datasets.Dataset``/``DatasetDict`` or a pandas ``DataFrame``; row =
  position; the path is ``None``.
- any other string: a Hub dataset name, read with ``datasets.load_dataset``; when Hub access is offline
  this is a DataError that says the path was not found locally.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from mixdpo.data.files import EXAMPLE_ROW, FILE_READERS, read_jsonl_lines
from mixdpo.data.rows import RawRow, SkippedRow
from mixdpo.errors import DataError

_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def load_preference_rows(
    source: Any, *, split: str | None = None, skipped: list[SkippedRow] | None = None
) -> list[RawRow]:
    """Read all rows of ``source`` (see the module docstring for the supported sources).

    Args:
        source: a path (str or ``os.PathLike``) to a ``.jsonl``/``.json``/``.csv``/``.parquet`` file or a
            ``save_to_disk`` directory; a list of dicts; a ``datasets.Dataset``/``DatasetDict``; a pandas
            ``DataFrame``; or a Hub dataset name.
        split: which split of a ``DatasetDict``, Hub dataset or multi-list JSON object to read.
        skipped: when given, unreadable lines of a JSON Lines file (bad bytes, broken JSON) are recorded here
            and left out instead of raising (``skip_invalid``); other formats fail as a whole.

    Returns:
        The rows in source order, each with its file path and 1-based row number.

    Raises:
        DataError: the source is missing, unreadable, empty or not in a supported format.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            return _read_saved_dataset(path, split)
        if path.is_file():
            reader = FILE_READERS.get(path.suffix.lower())
            if reader is None:
                raise DataError(
                    f"unsupported file type '{path.suffix or '(no extension)'}'; use one of "
                    f"{', '.join(sorted(FILE_READERS))} or a directory written by datasets' save_to_disk",
                    path=str(path),
                )
            rows = (
                read_jsonl_lines(path, skipped) if reader is FILE_READERS[".jsonl"] else reader(path, split)
            )
            if not rows:
                raise DataError(
                    f"the file has no rows; expected preference rows such as {EXAMPLE_ROW}", path=str(path)
                )
            return rows
        return _read_hub(str(source), split)
    return _read_in_memory(source, split)


def _read_saved_dataset(path: Path, split: str | None) -> list[RawRow]:
    if not any((path / name).exists() for name in ("dataset_dict.json", "dataset_info.json", "state.json")):
        raise DataError(
            "the directory is not a dataset written by datasets' save_to_disk; pass a data file "
            f"({', '.join(sorted(FILE_READERS))}) or a saved dataset directory",
            path=str(path),
        )
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as e:  # datasets raises many types for damaged directories
        raise DataError(f"cannot read the saved dataset ({type(e).__name__}: {e})", path=str(path)) from None
    return _rows_from_hf(loaded, str(path), split)


def _rows_from_hf(data: Any, path: str | None, split: str | None) -> list[RawRow]:
    """Rows of a ``datasets.Dataset``, or of one split of a ``DatasetDict``."""
    if isinstance(data, Mapping):  # DatasetDict is a dict of splits
        splits = list(data.keys())
        if split is None:
            split = splits[0] if len(splits) == 1 else "train" if "train" in splits else None
        if split not in splits:
            raise DataError(
                f"{'no split ' + repr(split) if split else 'several splits and none is train'}; the "
                f"dataset has splits {splits}: pass split=<name>",
                path=path,
            )
        data = data[split]
        path = f"{path}[{split}]" if path else f"[{split}]"
    rows = [RawRow(dict(item), path, i) for i, item in enumerate(data, start=1)]
    if not rows:
        raise DataError(f"the dataset has no rows; expected preference rows such as {EXAMPLE_ROW}", path=path)
    return rows


def _hub_offline() -> bool:
    return any(os.environ.get(var, "").strip().upper() in {"1", "ON", "YES", "TRUE"} for var in _OFFLINE_VARS)


def _read_hub(name: str, split: str | None) -> list[RawRow]:
    looks_like_file = Path(name).suffix.lower() in FILE_READERS or name.startswith((".", "/", "~"))
    if looks_like_file or not _HUB_NAME.match(name):
        raise DataError("no such file or directory; check the path", path=name)
    if _hub_offline():
        raise DataError(
            "no such file or directory here, and it cannot be loaded as a Hugging Face Hub dataset because "
            "Hub access is offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set). Check the path, or save "
            "the dataset where you have network access (save_to_disk, or to_json/to_parquet) and pass that "
            "copy",
            path=name,
        )
    import datasets

    try:
        loaded = datasets.load_dataset(name, split=split)
    except Exception as e:  # network, authentication and format errors all mean "cannot use this source"
        raise DataError(
            f"neither a local file nor a loadable Hub dataset ({type(e).__name__}: {e})", path=name
        ) from None
    where = f"hf://datasets/{name}" + (f"[{split}]" if split is not None else "")
    return _rows_from_hf(loaded, where, None)


def _read_in_memory(source: Any, split: str | None) -> list[RawRow]:
    module = type(source).__module__.split(".")[0]
    if module == "datasets":
        return _rows_from_hf(source, None, split)
    if module == "pandas" and hasattr(source, "to_dict"):
        source = source.to_dict(orient="records")
    if isinstance(source, Sequence) and not isinstance(source, (str, bytes)):
        return list(_rows_from_sequence(source))
    raise DataError(
        f"cannot read preference rows from a {type(source).__name__}; pass a file path, a saved dataset "
        "directory, a Hub dataset name, a list of dicts or a datasets.Dataset"
    )


def _rows_from_sequence(items: Sequence[Any]) -> Iterator[RawRow]:
    if not items:
        raise DataError(f"the list of rows is empty; expected preference rows such as {EXAMPLE_ROW}")
    for i, item in enumerate(items, start=1):
        if not isinstance(item, Mapping):
            raise DataError(f"expected a dict such as {EXAMPLE_ROW}; got {type(item).__name__}", row=i)
        yield RawRow(dict(item), None, i)
