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


class TrainingInterrupted(MixDPOError):
    """Training stopped on SIGINT / SIGTERM after writing a complete checkpoint (exit code 130 / 143).

    Attributes:
        checkpoint: the checkpoint directory to resume from.
        signal_name: ``SIGINT`` or ``SIGTERM``.
    """

    def __init__(self, checkpoint: str | None, signal_name: str):
        self.checkpoint, self.signal_name = checkpoint, signal_name
        where = f"checkpoint written to {checkpoint}" if checkpoint else "no checkpoint could be written"
        super().__init__(
            f"interrupted by {signal_name}: {where}; run the same command with --resume to continue"
        )


class NumericalFault(MixDPOError):
    """Training stopped because too many consecutive steps had non-finite gradients."""
