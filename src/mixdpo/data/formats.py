"""TRL's preference formats, normalised to one :class:`~mixdpo.data.rows.PreferenceRecord` per pair.

Four row shapes are accepted, exactly as TRL's ``DPOTrainer`` takes them:

=====================  ====================================================================================
explicit, text         ``{"prompt": "The sky is", "chosen": " blue.", "rejected": " green."}``
implicit, text         ``{"chosen": "The sky is blue.", "rejected": "The sky is green."}``
explicit, chat         ``{"prompt": [{"role": "user", "content": "Sky?"}],``
                       ``"chosen": [{"role": "assistant", "content": "Blue."}], "rejected": [...]}``
implicit, chat         ``{"chosen": [user msg, assistant msg], "rejected": [user msg, other assistant msg]}``
=====================  ====================================================================================

An implicit prompt is the longest common prefix of chosen and rejected (characters for text, whole
messages for chat); for text, a space right before the split point stays with the completions, as
TRL's ``extract_prompt`` does, so that word-initial tokens keep their leading space. Chat rows are
rendered with the tokenizer's own chat template as TRL's ``apply_chat_template`` does: the prompt with
the generation prompt, each completion as the full conversation's text minus the prompt's text.

Optional columns: a user id (str or int, kept as str), numeric user features (a list column, or one
number per column listed in ``user_feature_columns``) and a hidden group label (evaluation only).
Functions here expect rows that passed :func:`mixdpo.data.validate.validate_rows`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import takewhile
from typing import Any

from mixdpo.data.rows import PreferenceRecord, RawRow
from mixdpo.errors import DataError

Messages = list[dict[str, Any]]
VALID_ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class ColumnSpec:
    """Names of the columns to read (defaults are TRL's names plus mixdpo's optional ones).

    Attributes:
        prompt, chosen, rejected: the pair's columns; ``prompt`` may be absent (implicit prompt).
        user_id: optional user id column.
        user_features: optional column holding a list of numbers per row (or its JSON text, in CSV).
        group: optional hidden group label column (evaluation only, never used for training).
        user_feature_columns: names of numeric columns that together form the user features (one number
            each); when given they are required and ``user_features`` is not read.
    """

    prompt: str = "prompt"
    chosen: str = "chosen"
    rejected: str = "rejected"
    user_id: str = "user_id"
    user_features: str = "user_features"
    group: str = "group"
    user_feature_columns: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.user_feature_columns is not None:  # accept any sequence, store a hashable tuple
            object.__setattr__(self, "user_feature_columns", tuple(self.user_feature_columns))


@dataclass(frozen=True)
class OptionalColumns:
    """Which optional fields a dataset has (decided once for all rows by :func:`detect_optional_columns`)."""

    user_id: bool = False
    user_features: bool = False
    group: bool = False


def is_missing(value: Any) -> bool:
    """None, or the NaN that pandas puts in empty cells."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def detect_optional_columns(rows: Iterable[RawRow], columns: ColumnSpec) -> OptionalColumns:
    """An optional column is used when any row has a value in it; then every row needs one."""
    seen: set[str] = set()
    for row in rows:
        seen.update(key for key, value in row.data.items() if not is_missing(value))
    return OptionalColumns(
        user_id=columns.user_id in seen,
        user_features=columns.user_feature_columns is not None or columns.user_features in seen,
        group=columns.group in seen,
    )


def is_conversational(value: Any) -> bool:
    """Whether a prompt/chosen/rejected value is a list of messages (TRL's test: first item has a role)."""
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict) and "role" in value[0]


def uses_explicit_prompt(data: dict[str, Any], columns: ColumnSpec) -> bool:
    """Whether the row's prompt column is used, as TRL's ``maybe_extract_prompt`` decides.

    Some datasets carry a text prompt next to conversational chosen/rejected that already contain it;
    then the prompt column is ignored and the prompt is extracted from the conversations.
    """
    if is_missing(data.get(columns.prompt)):
        return False
    return is_conversational(data[columns.prompt]) == is_conversational(data.get(columns.chosen))


def common_prefix_length(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Number of leading items (characters or messages) ``a`` and ``b`` have in common."""
    if isinstance(a, str) and isinstance(b, str):
        # Binary search on slice equality: string comparison runs in C, a per-character loop would not.
        low, high = 0, min(len(a), len(b))
        while low < high:
            mid = (low + high + 1) // 2
            if a[:mid] == b[:mid]:
                low = mid
            else:
                high = mid - 1
        return low
    return sum(1 for _ in takewhile(lambda pair: pair[0] == pair[1], zip(a, b, strict=False)))


def extract_prompt(chosen: str | Messages, rejected: str | Messages) -> tuple[Any, Any, Any]:
    """Split an implicit-prompt pair into ``(prompt, chosen_completion, rejected_completion)``.

    The prompt is the longest common prefix (characters for text, messages for conversations). For text
    a space just before the split point goes to the completions (TRL's ``extract_prompt``), so
    ``"The sky is blue."`` / ``"The sky is green."`` gives ``("The sky is", " blue.", " green.")``.
    """
    n = common_prefix_length(chosen, rejected)
    if isinstance(chosen, str) and n > 0 and chosen[n - 1] == " ":
        n -= 1
    return chosen[:n], chosen[n:], rejected[n:]


def pair_parts(data: dict[str, Any], columns: ColumnSpec) -> tuple[Any, Any, Any]:
    """The row's ``(prompt, chosen, rejected)``, with the prompt extracted when it is implicit."""
    chosen, rejected = data[columns.chosen], data[columns.rejected]
    if uses_explicit_prompt(data, columns):
        return data[columns.prompt], chosen, rejected
    return extract_prompt(chosen, rejected)


def render_chat(
    prompt: Messages, chosen: Messages, rejected: Messages, tokenizer: Any, **template_kwargs: Any
) -> tuple[str, str, str]:
    """Render a conversational pair to text with the tokenizer's chat template (TRL's semantics).

    The prompt is rendered with the generation prompt when its last message is from the user or a tool,
    and as a continued final message when it is from the assistant. Each completion is the rendered full
    conversation minus the rendered prompt; the prompt text is cut back to the part that all three
    renderings share, because some templates render the generation prompt differently from the start of
    an assistant turn.

    Raises:
        DataError: the tokenizer has no chat template, or the template rejects the conversation.
    """
    if getattr(tokenizer, "chat_template", None) is None:
        raise DataError(
            "the rows are conversational (lists of messages) but the tokenizer has no chat_template; use a "
            "tokenizer with a chat template, set tokenizer.chat_template, or give the rows as plain text"
        )
    continue_final = prompt[-1]["role"] == "assistant"

    def render(messages: Messages, **kwargs: Any) -> str:
        return tokenizer.apply_chat_template(messages, tokenize=False, **template_kwargs, **kwargs)

    prompt_text = render(
        prompt, add_generation_prompt=not continue_final, continue_final_message=continue_final
    )
    full_chosen, full_rejected = render(prompt + chosen), render(prompt + rejected)
    n = min(common_prefix_length(prompt_text, full_chosen), common_prefix_length(prompt_text, full_rejected))
    return prompt_text[:n], full_chosen[n:], full_rejected[n:]


def user_features_of(data: dict[str, Any], columns: ColumnSpec) -> list[Any]:
    """The raw user feature values of a row (not yet checked or converted to float)."""
    if columns.user_feature_columns is not None:
        return [data.get(name) for name in columns.user_feature_columns]
    value: Any = data.get(columns.user_features)
    if isinstance(value, str):  # CSV cells hold the list as JSON text
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            return [value]
    if hasattr(value, "tolist"):  # numpy arrays from pandas or datasets
        value = value.tolist()
    return value if isinstance(value, list) else [value]


def to_float(value: Any) -> float:
    """A feature value as float; numeric strings (from CSV) are accepted, booleans are not."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    return float(value.strip() if isinstance(value, str) else value)


def to_record(
    row: RawRow,
    columns: ColumnSpec | None = None,
    tokenizer: Any = None,
    *,
    optional: OptionalColumns | None = None,
    **template_kwargs: Any,
) -> PreferenceRecord:
    """Normalise one validated row to a :class:`PreferenceRecord` (chat rows rendered to text).

    Args:
        row: a row that passed validation.
        columns: column names (defaults: :class:`ColumnSpec`).
        tokenizer: needed for conversational rows (its chat template renders them).
        optional: which optional columns the dataset has; by default, those this row has.
        template_kwargs: extra variables for the chat template (TRL's ``chat_template_kwargs``).

    Raises:
        DataError: (conversational rows) no chat template, or the template rejects the conversation.
    """
    columns = columns or ColumnSpec()
    optional = optional or detect_optional_columns([row], columns)
    prompt, chosen, rejected = pair_parts(row.data, columns)
    is_chat = is_conversational(chosen)
    if is_chat:
        try:
            prompt, chosen, rejected = render_chat(prompt, chosen, rejected, tokenizer, **template_kwargs)
        except DataError as e:
            raise DataError(str(e), path=row.path, row=row.row, field=columns.chosen) from None
        except Exception as e:  # jinja raises for conversations a template forbids (roles not alternating...)
            raise DataError(
                f"the tokenizer's chat template cannot render this conversation ({type(e).__name__}: {e}); "
                "fix the messages' roles/order or use a template that accepts them",
                path=row.path,
                row=row.row,
                field=columns.chosen,
            ) from None
    features = None
    if optional.user_features:
        features = tuple(to_float(v) for v in user_features_of(row.data, columns))
    return PreferenceRecord(
        prompt=prompt,
        chosen=chosen,
        rejected=rejected,
        user_id=str(row.data[columns.user_id]) if optional.user_id else None,
        user_features=features,
        group=str(row.data[columns.group]) if optional.group else None,
        is_chat=is_chat,
        path=row.path,
        row=row.row,
    )
