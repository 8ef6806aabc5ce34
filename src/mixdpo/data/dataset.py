"""The tokenized preference dataset, and the one call that builds it from a source.

:func:`build_preference_dataset` runs the whole pipeline — load, validate, normalise (chat templates,
implicit prompts), tokenize and truncate — and returns a :class:`PreferenceDataset` plus a
:class:`BuildReport` of every row that was left out and why. Nothing is dropped silently.

The dataset's :attr:`~PreferenceDataset.fingerprint` is a sha256 over its token ids (in order) and the
tokenization settings: the cache key for precomputed reference log-probs. User ids, features and group
labels are left out of it on purpose, because reference log-probs do not depend on them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from array import array
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from torch.utils.data import Dataset

from mixdpo.data.formats import ColumnSpec, detect_optional_columns, to_record
from mixdpo.data.load import load_preference_rows
from mixdpo.data.rows import PreferenceRecord, SkippedRow, TokenizedPair
from mixdpo.data.tokenize import TokenizationSettings, tokenize_rows
from mixdpo.data.users import GroupVocab, UserVocab
from mixdpo.data.validate import validate_rows
from mixdpo.errors import DataError

logger = logging.getLogger(__name__)
_LOGGED_ROWS = 10
_FINGERPRINT_VERSION = "mixdpo-pairs-v1"  # change when the hashed layout changes, to invalidate old caches


class PreferenceDataset(Dataset):
    """Tokenized preference pairs with their provenance; item ``i`` is a pair dict with ``example_index=i``.

    Args:
        pairs: tokenized pairs (see :class:`~mixdpo.data.rows.TokenizedPair`).
        settings: the tokenization settings that produced them (part of the fingerprint).
        sources: ``(path, row)`` of each pair in its source file, for error messages; optional.
    """

    def __init__(
        self,
        pairs: Sequence[TokenizedPair],
        settings: TokenizationSettings | None = None,
        sources: Sequence[tuple[str | None, int | None]] | None = None,
    ):
        if sources is not None and len(sources) != len(pairs):
            raise ValueError(f"got {len(sources)} sources for {len(pairs)} pairs")
        self.pairs = list(pairs)
        self.settings = settings or TokenizationSettings()
        self.sources = list(sources) if sources is not None else [(None, None)] * len(self.pairs)
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> TokenizedPair:
        item: TokenizedPair = {**self.pairs[index], "example_index": index}  # type: ignore[typeddict-item]
        return item

    def source(self, index: int) -> tuple[str | None, int | None]:
        """``(path, row)`` of pair ``index`` in its source (row is 1-based)."""
        return self.sources[index]

    @property
    def user_ids(self) -> list[str | None]:
        """Each pair's user id (``None`` where the data has none)."""
        return [p.get("user_id") for p in self.pairs]

    @property
    def groups(self) -> list[str | None]:
        """Each pair's hidden group label (``None`` where the data has none)."""
        return [p.get("group") for p in self.pairs]

    @property
    def num_user_features(self) -> int:
        """Length of the user feature vectors (0 without features)."""
        return len(self.pairs[0].get("user_features", ())) if self.pairs else 0

    def user_vocab(self) -> UserVocab:
        """The vocabulary of this dataset's user ids (build it on the training set)."""
        return UserVocab.from_labels(self.user_ids)

    def group_vocab(self) -> GroupVocab:
        """The vocabulary of this dataset's group labels."""
        return GroupVocab.from_labels(self.groups)

    @property
    def fingerprint(self) -> str:
        """sha256 (hex) over the token ids in order and the settings; stable across runs and machines."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            header = {
                "version": _FINGERPRINT_VERSION,
                "settings": self.settings.to_dict(),
                "n": len(self.pairs),
            }
            digest.update(json.dumps(header, sort_keys=True).encode())
            for pair in self.pairs:
                for name in ("prompt_ids", "chosen_ids", "rejected_ids"):
                    ids = pair[name]  # type: ignore[literal-required]
                    # Length prefixes keep [1, 2] + [3] distinct from [1] + [2, 3].
                    digest.update(len(ids).to_bytes(8, "little"))
                    digest.update(array("q", ids).tobytes())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def __repr__(self) -> str:
        return f"PreferenceDataset({len(self)} pairs, fingerprint={self.fingerprint[:12]})"


@dataclass
class BuildReport:
    """What :func:`build_preference_dataset` did with each row.

    Attributes:
        rows_read: rows in the source.
        invalid: rows left out by validation or formatting (``skip_invalid=True`` only).
        unfit: rows left out because they cannot fit the length limits.
    """

    rows_read: int = 0
    invalid: list[SkippedRow] = field(default_factory=list)
    unfit: list[SkippedRow] = field(default_factory=list)

    @property
    def skipped(self) -> list[SkippedRow]:
        """All left-out rows (invalid, then unfit)."""
        return self.invalid + self.unfit

    def summary(self) -> str:
        """One line for logs, e.g. ``"read 100 rows: 97 pairs, 2 invalid, 1 too long"``."""
        kept = self.rows_read - len(self.invalid) - len(self.unfit)
        invalid, unfit = len(self.invalid), len(self.unfit)
        return f"read {self.rows_read} rows: {kept} pairs, {invalid} invalid, {unfit} too long"


def build_preference_dataset(
    source: Any,
    tokenizer: Any,
    settings: TokenizationSettings | None = None,
    *,
    split: str | None = None,
    columns: ColumnSpec | None = None,
    user_feature_columns: Sequence[str] | None = None,
    skip_invalid: bool = False,
    known_users: Collection[str] | None = None,
    chat_template_kwargs: dict[str, Any] | None = None,
) -> tuple[PreferenceDataset, BuildReport]:
    """Load, validate, normalise and tokenize a preference source in one call.

    Args:
        source: anything :func:`~mixdpo.data.load.load_preference_rows` reads (path, Hub name, list...).
        tokenizer: a Hugging Face tokenizer (its chat template renders conversational rows).
        settings: length limits and truncation mode (default: no limits).
        split: split of a ``DatasetDict`` / Hub dataset.
        columns: column names (default :class:`~mixdpo.data.formats.ColumnSpec`).
        user_feature_columns: numeric columns that form the user features (overrides ``columns``'s).
        skip_invalid: leave bad rows out and report them instead of raising on the first.
        known_users: user ids known from training; unseen users are then problems (evaluation data).
        chat_template_kwargs: extra variables for the chat template.

    Returns:
        ``(dataset, report)``. Rows that cannot fit the length limits are always left out and listed in
        ``report.unfit`` (and logged), whatever ``skip_invalid`` says.

    Raises:
        DataError: a bad source or row (``skip_invalid=False``), or no usable row at all.
    """
    columns = columns or ColumnSpec()
    if user_feature_columns is not None:
        columns = replace(columns, user_feature_columns=tuple(user_feature_columns))
    settings = settings or TokenizationSettings()
    unreadable: list[SkippedRow] = []
    rows = load_preference_rows(source, split=split, skipped=unreadable if skip_invalid else None)
    report = BuildReport(rows_read=len(rows) + len(unreadable))
    valid, report.invalid = validate_rows(
        rows, columns=columns, skip_invalid=skip_invalid, known_users=known_users
    )
    report.invalid = unreadable + report.invalid
    optional = detect_optional_columns(valid, columns)
    records: list[PreferenceRecord] = []
    for row in valid:
        try:
            records.append(
                to_record(row, columns, tokenizer, optional=optional, **(chat_template_kwargs or {}))
            )
        except DataError as e:
            if not skip_invalid:
                raise
            report.invalid.append(SkippedRow.from_error(e))
    tokenized = tokenize_rows(records, tokenizer, settings)
    report.unfit = tokenized.skipped
    if report.skipped:
        logger.warning("preference data: %s", report.summary())
        for skipped in report.skipped[:_LOGGED_ROWS]:  # the report has them all; the log shows the first
            logger.warning("left out %s", skipped)
    if not tokenized.pairs:
        first = "; ".join(str(s) for s in report.skipped[:3])
        raise DataError(f"no usable preference pairs ({report.summary()}); first problems: {first}")
    sources = [(r.path, r.row) for r in tokenized.records]
    return PreferenceDataset(tokenized.pairs, settings, sources), report
