"""Errors that mixdpo raises for user mistakes.

Every error that a user can fix derives from :class:`MixDPOError`; the CLI turns it into a one-paragraph
message and exit code 2 instead of a traceback. Messages say what is wrong *and* what to change.
"""

from __future__ import annotations


class MixDPOError(Exception):
    """Base class of errors caused by input the user can change (config, data, paths)."""


class ConfigError(MixDPOError, ValueError):
    """An option has a value mixdpo cannot use.

    Args:
        field: name of the option, as it appears in the config file / CLI (``beta``, ``estep``...).
        message: what is wrong and what to change.
    """

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"option '{field}': {message}")


class DataError(MixDPOError, ValueError):
    """A data file has a row mixdpo cannot use; names the file, the row (1-based) and the field."""

    def __init__(
        self, message: str, *, path: str | None = None, row: int | None = None, field: str | None = None
    ):
        self.path, self.row, self.field = path, row, field
        where = ", ".join(
            part
            for part in (
                f"file {path}" if path is not None else "",
                f"row {row}" if row is not None else "",
                f"field '{field}'" if field is not None else "",
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)
