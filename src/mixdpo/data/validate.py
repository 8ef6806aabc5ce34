"""Check preference rows before they are used, with messages that say which row to fix and how.

:func:`validate_rows` checks every row of a loaded source: required columns, text that is present and
not blank, types (text or a list of ``{"role", "content"}`` messages), chosen different from rejected,
an implicit prompt that can be extracted, user ids and group labels of a usable type, user features
that are finite numbers of one consistent length, and (at evaluation) users that the training data
knew. By default the first problem raises :class:`~mixdpo.errors.DataError`; with
``skip_invalid=True`` every bad row is left out and listed, one :class:`SkippedRow` per row.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any

from mixdpo.data.formats import (
    VALID_ROLES,
    ColumnSpec,
    OptionalColumns,
    detect_optional_columns,
    is_conversational,
    is_missing,
    pair_parts,
    to_float,
    user_features_of,
)
from mixdpo.data.rows import RawRow, SkippedRow
from mixdpo.errors import DataError

_TEXT_OR_MESSAGES = "text (a string) or a list of messages such as [{'role': 'user', 'content': '...'}]"


class _Problem(Exception):
    """A problem with one field of the current row (turned into a DataError that names the row)."""

    def __init__(self, field: str | None, message: str):
        super().__init__(message)
        self.field, self.message = field, message


def validate_rows(
    rows: Sequence[RawRow],
    *,
    columns: ColumnSpec | None = None,
    skip_invalid: bool = False,
    known_users: Collection[str] | None = None,
) -> tuple[list[RawRow], list[SkippedRow]]:
    """Check ``rows``; return the valid ones and a report of the skipped ones.

    Args:
        rows: rows from :func:`~mixdpo.data.load.load_preference_rows`.
        columns: column names (defaults: :class:`~mixdpo.data.formats.ColumnSpec`).
        skip_invalid: False: raise on the first bad row. True: leave bad rows out and report them.
        known_users: user ids seen in training (e.g. a :class:`~mixdpo.data.users.UserVocab`); when
            given, a row whose user is not among them is a problem. Leave it ``None`` to let unseen
            users map to ``UNKNOWN_USER``.

    Returns:
        ``(valid_rows, skipped)``; ``skipped`` holds one ``(path, row, field, message)`` per left-out row
        and is empty when ``skip_invalid`` is False.

    Raises:
        DataError: (``skip_invalid=False``) the first problem found, naming file, row and field.
    """
    columns = columns or ColumnSpec()
    optional = detect_optional_columns(rows, columns)
    valid: list[RawRow] = []
    skipped: list[SkippedRow] = []
    n_features: int | None = None
    first_with_features: RawRow | None = None
    for row in rows:
        try:
            count = _check_row(row.data, columns, optional, known_users)
            if count is not None and n_features is not None and count != n_features:
                assert first_with_features is not None
                where = f"row {first_with_features.row}" + (
                    f" of {first_with_features.path}" if first_with_features.path else ""
                )
                raise _Problem(
                    _features_field(columns),
                    f"has {count} user features but {where} has {n_features}; every row needs the same "
                    "number",
                )
        except _Problem as p:
            error = DataError(p.message, path=row.path, row=row.row, field=p.field)
            if not skip_invalid:
                raise error from None
            skipped.append(SkippedRow.from_error(error))
            continue
        if count is not None and n_features is None:
            n_features, first_with_features = count, row
        valid.append(row)
    return valid, skipped


def _features_field(columns: ColumnSpec) -> str:
    if columns.user_feature_columns is not None:
        return ",".join(columns.user_feature_columns)
    return columns.user_features


def _check_row(
    data: dict[str, Any], columns: ColumnSpec, optional: OptionalColumns, known_users: Collection[str] | None
) -> int | None:
    """Raise _Problem for the row's first problem; return its number of user features (or None)."""
    for name in (columns.chosen, columns.rejected):
        if name not in data:
            raise _Problem(
                name,
                f"missing required column '{name}'; the row has columns {sorted(data)}. Rename the column, "
                f"or name yours with ColumnSpec({'chosen' if name == columns.chosen else 'rejected'}=...)",
            )
        _check_text_or_messages(data[name], name)
    chosen, rejected = data[columns.chosen], data[columns.rejected]
    if is_conversational(chosen) != is_conversational(rejected):
        raise _Problem(columns.rejected, "chosen and rejected must both be text or both be lists of messages")
    prompt = data.get(columns.prompt)
    if not is_missing(prompt):
        if is_conversational(prompt) and not is_conversational(chosen):
            raise _Problem(
                columns.prompt, "the prompt is a list of messages but chosen is text; use one format"
            )
        if is_conversational(prompt) or not is_conversational(chosen):  # else TRL ignores a text prompt
            _check_text_or_messages(prompt, columns.prompt)
    if chosen == rejected:
        raise _Problem(
            columns.rejected, "chosen and rejected are identical; a pair needs two different completions"
        )
    _check_parts(data, columns)
    n_features = None
    if optional.user_id:
        user = _check_label(data.get(columns.user_id), columns.user_id, "user id")
        if known_users is not None and user not in known_users:
            raise _Problem(
                columns.user_id,
                f"user '{user}' is not among the {len(known_users)} users of the training data; remove the "
                "row, or do not pass known users so that unseen users map to UNKNOWN_USER (-1)",
            )
    if optional.group:
        _check_label(data.get(columns.group), columns.group, "group label")
    if optional.user_features:
        n_features = _check_features(data, columns)
    return n_features


def _check_text_or_messages(value: Any, field: str) -> None:
    if is_missing(value):
        raise _Problem(field, "the value is missing (null or an empty cell); give every row a value")
    if isinstance(value, str):
        _check_text(value, field, "the text")
    elif isinstance(value, list):
        _check_messages(value, field)
    else:
        raise _Problem(field, f"expected {_TEXT_OR_MESSAGES}; got {type(value).__name__} {value!r:.40}")


def _check_text(text: str, field: str, what: str) -> None:
    if not text.strip():
        raise _Problem(field, f"{what} is empty or only whitespace; give it text or remove the row")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:  # e.g. a lone surrogate from a "\ud800" JSON escape
        raise _Problem(field, f"{what} holds a character that is not valid Unicode ({e.reason})") from None


def _check_messages(messages: list[Any], field: str) -> None:
    if not messages:
        raise _Problem(field, f"the list of messages is empty; expected {_TEXT_OR_MESSAGES}")
    for i, message in enumerate(messages, start=1):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise _Problem(
                field, f"message {i} is not a {{'role': ..., 'content': ...}} dict: {message!r:.60}"
            )
        if message["role"] not in VALID_ROLES:
            raise _Problem(
                field, f"message {i} has role {message['role']!r}; valid roles are {', '.join(VALID_ROLES)}"
            )
        content = message["content"]
        if not isinstance(content, str):
            raise _Problem(field, f"message {i} has content of type {type(content).__name__}; expected text")
        if not message.get("tool_calls"):  # an assistant turn that only calls tools may have no text
            _check_text(content, field, f"message {i}'s content")


def _check_parts(data: dict[str, Any], columns: ColumnSpec) -> None:
    """The prompt/completion split must leave a prompt and two completions (implicit prompts)."""
    prompt, chosen, rejected = pair_parts(data, columns)
    chat = is_conversational(data[columns.chosen])
    if not prompt:
        raise _Problem(
            columns.prompt,
            f"there is no '{columns.prompt}' column and chosen and rejected share no beginning, so there is "
            "no prompt; add a prompt column (or name yours with ColumnSpec(prompt=...))",
        )
    if chat and prompt[-1]["role"] not in ("user", "tool", "assistant"):
        raise _Problem(
            columns.prompt,
            f"the prompt's last message is from {prompt[-1]['role']!r}; it must end with a user or tool "
            "message (or an assistant message to be continued)",
        )
    for field, completion in ((columns.chosen, chosen), (columns.rejected, rejected)):
        if not completion or (isinstance(completion, str) and not completion.strip()):
            raise _Problem(
                field,
                "nothing is left of the completion once the prompt it shares with the other completion is "
                "removed (one is a prefix of the other); add an explicit prompt column or fix the row",
            )


def _check_label(value: Any, field: str, what: str) -> str:
    """A user id or group label: a non-empty string or an integer, returned as a string."""
    if is_missing(value):
        raise _Problem(field, f"the {what} is missing; other rows have one, so give every row one")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _Problem(
            field, f"the {what} must be a string or an integer; got {type(value).__name__} {value!r:.40}"
        )
    if isinstance(value, str) and not value.strip():
        raise _Problem(field, f"the {what} is empty; give every row one")
    return str(value)


def _check_features(data: dict[str, Any], columns: ColumnSpec) -> int:
    names = columns.user_feature_columns
    if names is not None:
        for name in names:
            if name not in data:
                raise _Problem(
                    name, f"missing user feature column '{name}'; the row has columns {sorted(data)}"
                )
    values = user_features_of(data, columns)
    if not values:
        raise _Problem(columns.user_features, "the list of user features is empty")
    for i, value in enumerate(values):
        field = names[i] if names is not None else columns.user_features
        item = "the value" if names is not None else f"feature {i + 1}"
        try:
            number = to_float(value)
        except (TypeError, ValueError, OverflowError):
            raise _Problem(
                field, f"{item} is {value!r:.40}, not a number; user features must be numbers"
            ) from None
        if not math.isfinite(number):
            raise _Problem(
                field,
                f"{item} is {number}; user features must be finite numbers (fill or drop missing values)",
            )
    return len(values)
