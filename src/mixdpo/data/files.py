"""Readers for data files: JSON Lines, JSON, CSV and Parquet, each row with its path and row number.

Each reader takes a path and returns :class:`~mixdpo.data.rows.RawRow` objects in file order, or raises
:class:`~mixdpo.errors.DataError` naming the file and, where it can, the row (line) to fix. Text must
be UTF-8 (a leading BOM is accepted). How rows are numbered is listed in :mod:`mixdpo.data.load`.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mixdpo.data.rows import RawRow, SkippedRow
from mixdpo.errors import DataError

EXAMPLE_ROW = '{"prompt": "...", "chosen": "...", "rejected": "..."}'


def _decode(data: bytes, path: Path) -> str:
    """UTF-8 text of a whole file (a leading BOM, as Windows tools write it, is allowed)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(_not_utf8(data, e), path=str(path), row=line) from None


def _not_utf8(data: bytes, e: UnicodeDecodeError) -> str:
    return (
        f"the text is not valid UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start}); re-save the file "
        "as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
    )


def _parse_json_object(text: str, path: Path, row: int) -> dict[str, Any]:
    """One JSON Lines line as a dict, or a DataError that names the line."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(
            f"invalid JSON ({e.msg} at column {e.colno}); each line must be one JSON object such as "
            f"{EXAMPLE_ROW}",
            path=str(path),
            row=row,
        ) from None
    except RecursionError:
        raise DataError("the JSON value is nested too deeply to read", path=str(path), row=row) from None
    if not isinstance(value, dict):
        raise DataError(
            f"expected a JSON object such as {EXAMPLE_ROW}; got a JSON {_json_kind(value)}",
            path=str(path),
            row=row,
        )
    return value


def _json_kind(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def read_jsonl_lines(path: Path, skipped: list[SkippedRow] | None = None) -> list[RawRow]:
    """Rows of a JSON Lines file; with ``skipped`` given, an undecodable or unparsable line is recorded
    there (file, row, message) and left out instead of stopping the read (``skip_invalid``)."""
    rows = []
    with path.open("rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                try:
                    # Decode per line so that a bad byte is reported on its own line.
                    text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
                except UnicodeDecodeError as e:
                    raise DataError(_not_utf8(raw, e), path=str(path), row=line_no) from None
                if text.strip():
                    rows.append(RawRow(_parse_json_object(text, path, line_no), str(path), line_no))
            except DataError as e:
                if skipped is None:
                    raise
                skipped.append(SkippedRow.from_error(e))
    return rows


def _read_jsonl(path: Path, split: str | None) -> list[RawRow]:
    return read_jsonl_lines(path)


def _read_json(path: Path, split: str | None) -> list[RawRow]:
    text = _decode(path.read_bytes(), path)
    if not text.strip():
        return []
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":  # several values: JSON Lines in a .json file (datasets' to_json writes it)
            return _json_lines(text, path)
        raise DataError(
            f"invalid JSON ({e.msg} at line {e.lineno}, column {e.colno}); a .json file must hold a list "
            f"of objects such as [{EXAMPLE_ROW}] or one object per line",
            path=str(path),
        ) from None
    except RecursionError:
        raise DataError("the JSON value is nested too deeply to read", path=str(path)) from None
    if isinstance(value, dict):
        value = _pick_json_list(value, path, split)
    if not isinstance(value, list):
        raise DataError(
            f"a .json file must hold a list of objects such as [{EXAMPLE_ROW}]; got a JSON "
            f"{_json_kind(value)}",
            path=str(path),
        )
    rows = []
    for i, item in enumerate(value, start=1):
        if not isinstance(item, dict):
            raise DataError(
                f"list item {i} is a JSON {_json_kind(item)}; every item must be an object such as "
                f"{EXAMPLE_ROW}",
                path=str(path),
                row=i,
            )
        rows.append(RawRow(item, str(path), i))
    return rows


def _json_lines(text: str, path: Path) -> list[RawRow]:
    return [
        RawRow(_parse_json_object(line, path, i), str(path), i)
        for i, line in enumerate(text.split("\n"), start=1)
        if line.strip()
    ]


def _pick_json_list(value: dict[str, Any], path: Path, split: str | None) -> Any:
    """``{"train": [...]}``-style files: the list of rows under ``split``, or the only one.

    Lists of messages (objects with a ``role``) are not lists of rows: a lone object such as
    ``{"chosen": [messages], ...}`` is one row stored without its enclosing list.
    """
    lists = {
        k: v
        for k, v in value.items()
        if isinstance(v, list) and not (v and isinstance(v[0], dict) and "role" in v[0])
    }
    if split is not None:
        if split not in lists:
            raise DataError(f"no list named '{split}'; the file has lists {sorted(lists)}", path=str(path))
        return lists[split]
    if len(lists) == 1:
        return next(iter(lists.values()))
    if not lists:
        raise DataError(
            f"the file holds a single JSON object, not a list of rows; write the rows as a list "
            f"[{EXAMPLE_ROW}, ...] or one object per line (.jsonl)",
            path=str(path),
        )
    raise DataError(
        f"a top-level JSON object must hold exactly one list of rows (found lists {sorted(lists)}); "
        "pass split=<name> to pick one, or store the rows as a top-level list",
        path=str(path),
    )


def _read_csv(path: Path, split: str | None) -> list[RawRow]:
    text = _decode(path.read_bytes(), path)
    # Long completions exceed csv's default 128 KiB field limit.
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    rows: list[RawRow] = []
    start = 1
    try:
        for values in reader:
            line, start = start, reader.line_num + 1  # the record began on the line after the previous one
            if not values or (len(values) == 1 and not values[0].strip()):
                continue
            if header is None:
                header = _csv_header(values, path)
                continue
            if len(values) != len(header):
                raise DataError(
                    f"the row has {len(values)} values but the header has {len(header)} columns; quote "
                    'values that contain commas or line breaks ("a, b")',
                    path=str(path),
                    row=line,
                )
            rows.append(
                RawRow({k: _csv_cell(v) for k, v in zip(header, values, strict=True)}, str(path), line)
            )
    except csv.Error as e:
        raise DataError(f"not valid CSV ({e})", path=str(path), row=reader.line_num) from None
    return rows


def _csv_header(values: list[str], path: Path) -> list[str]:
    header = [v.strip() for v in values]
    duplicates = sorted({h for h in header if h and header.count(h) > 1})
    if duplicates:
        raise DataError(
            f"the header repeats column(s) {duplicates}; give every column a unique name",
            path=str(path),
            row=1,
        )
    return header


def _csv_cell(value: str) -> Any:
    """CSV cells are text; empty cells are missing, and JSON lists of messages are decoded."""
    if value == "":
        return None
    stripped = value.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        try:
            decoded = json.loads(stripped)
        except (json.JSONDecodeError, RecursionError):
            return value
        # Only lists of objects (messages): a text that happens to look like "[1, 2]" stays text.
        if isinstance(decoded, list) and decoded and all(isinstance(m, dict) for m in decoded):
            return decoded
    return value


def _read_parquet(path: Path, split: str | None) -> list[RawRow]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"not a readable Parquet file ({e})", path=str(path)) from None
    return [RawRow(item, str(path), i) for i, item in enumerate(table.to_pylist(), start=1)]


FILE_READERS: dict[str, Callable[[Path, str | None], list[RawRow]]] = {
    ".jsonl": _read_jsonl,
    ".json": _read_json,
    ".csv": _read_csv,
    ".parquet": _read_parquet,
}
