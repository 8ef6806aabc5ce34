"""The records that flow through the data pipeline, from a file row to a tokenized pair.

    file ──load──> RawRow ──validate──> RawRow ──formats──> PreferenceRecord ──tokenize──> TokenizedPair
    TokenizedPair ──collate──> batch (see mixdpo/batch.py)

Every stage keeps the provenance of a row (file path and 1-based row number) so that any problem found
later names the row a user has to fix. Rows that a stage leaves out are never dropped silently: they
are listed as :class:`SkippedRow` entries in a report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, TypedDict

from mixdpo.errors import DataError


@dataclass(frozen=True)
class RawRow:
    """One row as read from a source, before any checking.

    Attributes:
        data: the row's columns as plain Python values (str, int, float, list, dict, None).
        path: the file (or dataset) the row came from; ``None`` for in-memory data.
        row: 1-based row number in that source (for JSON Lines and CSV files: the line number).
    """

    data: dict[str, Any]
    path: str | None
    row: int


@dataclass(frozen=True)
class PreferenceRecord:
    """One preference pair in the internal format: text prompt and completions, optional user data.

    Conversational rows are already rendered with the tokenizer's chat template (``is_chat`` is then
    True: the prompt text carries the template's own special tokens, so tokenization adds none).

    Attributes:
        prompt: the prompt text (for chat rows: rendered with the generation prompt).
        chosen: the preferred completion text (continues ``prompt``).
        rejected: the dispreferred completion text (continues ``prompt``).
        user_id: the user's id, normalised to ``str``; ``None`` when the data has no user column.
        user_features: numeric user features, ``None`` when the data has none.
        group: hidden group label as ``str`` (evaluation only); ``None`` when absent.
        is_chat: whether the row was conversational.
        path, row: provenance (see :class:`RawRow`).
    """

    prompt: str
    chosen: str
    rejected: str
    user_id: str | None = None
    user_features: tuple[float, ...] | None = None
    group: str | None = None
    is_chat: bool = False
    path: str | None = None
    row: int | None = None


class SkippedRow(NamedTuple):
    """A row that a pipeline stage left out, and why (one entry per row, its first problem)."""

    path: str | None
    row: int | None
    field: str | None
    message: str

    @classmethod
    def from_error(cls, error: DataError) -> SkippedRow:
        """The entry for a row that raised ``error`` (its message without the "file, row, field" prefix)."""
        prefix = str(DataError("", path=error.path, row=error.row, field=error.field))
        text = str(error)
        message = text[len(prefix) :] if prefix and text.startswith(prefix) else text
        return cls(error.path, error.row, error.field, message)

    def __str__(self) -> str:
        where = ", ".join(
            part
            for part in (
                f"file {self.path}" if self.path is not None else "",
                f"row {self.row}" if self.row is not None else "",
                f"field '{self.field}'" if self.field is not None else "",
            )
            if part
        )
        return f"{where}: {self.message}" if where else self.message


class _RequiredPairKeys(TypedDict):
    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]


class TokenizedPair(_RequiredPairKeys, total=False):
    """One tokenized preference pair: what a dataset yields and the collator consumes.

    ``chosen_ids`` and ``rejected_ids`` are completion tokens only (EOS included); the model input of
    the chosen sequence is ``prompt_ids + chosen_ids``. The optional keys are present only when the
    data has them (``example_index`` is added by the dataset).
    """

    example_index: int
    user_id: str
    user_features: list[float]
    group: str
