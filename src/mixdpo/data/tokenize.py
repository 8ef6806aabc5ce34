"""Turn preference records into token ids: a prompt, a chosen and a rejected completion.

Special tokens: a plain-text prompt is encoded with the tokenizer's own special tokens (a Llama-style
tokenizer prepends BOS, GPT-2 adds nothing); a chat prompt is encoded without, because the chat template
already wrote them. A doubled leading BOS (text that itself starts with the BOS string) is collapsed to
one, and an EOS that the tokenizer itself appends to the prompt is removed. Completions are encoded
without special tokens and end with EOS, appended unless the completion already ends with it
(trailing whitespace aside — chat templates often write ``<|im_end|>\\n``).

The prompt and the completions are encoded separately, so the prompt's ids are exactly those of the
prompt alone (TRL 1.x encodes prompt + completion together and splits at their common prefix; the two
agree whenever the prompt ends on a token boundary, as chat templates' generation prompts do, and as
implicit text prompts do because the space before the split stays with the completions).

Truncation (:class:`TokenizationSettings`; every limit is optional):

1. ``max_completion_length``: each completion keeps its first tokens (its EOS may be cut).
2. ``max_prompt_length``: the prompt keeps its last tokens (``truncation_mode="keep_end"``) or its
   first tokens (``"keep_start"``).
3. ``max_length`` bounds prompt + the longer completion. ``keep_end`` keeps the end of the sequence:
   the prompt loses its first tokens; ``keep_start`` keeps the start: the completions lose their last
   tokens. When nothing would be left of the prompt (``keep_end``) or of the completions
   (``keep_start``), the row cannot fit: it is reported, never silently dropped.

``keep_end`` is the default because the end of a prompt (the question and the chat template's
generation prompt) and whole completions (the preference signal) are what DPO needs most.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

from mixdpo.data.rows import PreferenceRecord, SkippedRow, TokenizedPair
from mixdpo.errors import ConfigError, DataError

TRUNCATION_MODES = ("keep_end", "keep_start")


@dataclass(frozen=True)
class TokenizationSettings:
    """How records become token ids (JSON-serialisable: it is part of the reference-log-prob cache key).

    Attributes:
        max_length: most tokens of prompt + completion (each of chosen and rejected); None: no limit.
        max_prompt_length: most prompt tokens; None: no limit.
        max_completion_length: most tokens of each completion (EOS included); None: no limit.
        truncation_mode: ``"keep_end"`` (keep the prompt's last tokens) or ``"keep_start"`` (keep the
            start: the prompt's first tokens, and whole prompts with cut completions under ``max_length``).
    """

    max_length: int | None = None
    max_prompt_length: int | None = None
    max_completion_length: int | None = None
    truncation_mode: str = "keep_end"

    def __post_init__(self) -> None:
        for name in ("max_length", "max_prompt_length", "max_completion_length"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(name, f"must be a positive integer or None (no limit); got {value!r}")
        if self.truncation_mode not in TRUNCATION_MODES:
            raise ConfigError(
                "truncation_mode",
                f"must be one of {', '.join(TRUNCATION_MODES)}; got {self.truncation_mode!r}",
            )

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-serialisable dict (keys sorted by field order)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TokenizationSettings:
        """Inverse of :meth:`to_dict`; unknown keys are a ConfigError."""
        known = {f.name for f in fields(cls)}
        for key in values:
            if key not in known:
                raise ConfigError(key, f"unknown tokenization setting; known settings are {sorted(known)}")
        return cls(**values)


class TokenizedRows(NamedTuple):
    """What :func:`tokenize_rows` returns: ``records[i]`` is the source of ``pairs[i]``."""

    pairs: list[TokenizedPair]
    records: list[PreferenceRecord]
    skipped: list[SkippedRow]


def tokenize_pair(
    record: PreferenceRecord, tokenizer: Any, settings: TokenizationSettings | None = None
) -> TokenizedPair:
    """Tokenize and truncate one record.

    Raises:
        DataError: the row cannot fit the limits (names the row and the setting to change).
    """
    result = tokenize_rows([record], tokenizer, settings)
    if result.skipped:
        skipped = result.skipped[0]
        raise DataError(skipped.message, path=skipped.path, row=skipped.row, field=skipped.field)
    return result.pairs[0]


def tokenize_rows(
    records: Sequence[PreferenceRecord],
    tokenizer: Any,
    settings: TokenizationSettings | None = None,
    *,
    batch_size: int = 1024,
) -> TokenizedRows:
    """Tokenize many records (in batches, for the speed of fast tokenizers).

    Returns:
        ``TokenizedRows(pairs, records, skipped)``: the pairs that fit, their source records, and one
        :class:`~mixdpo.data.rows.SkippedRow` (field = the limit) for each row that cannot fit.
    """
    settings = settings or TokenizationSettings()
    eos_id, eos_text = _eos(tokenizer)
    out = TokenizedRows([], [], [])
    for start in range(0, len(records), batch_size):
        batch = records[start : start + batch_size]
        prompts = _encode_prompts(batch, tokenizer)
        chosen = _encode(tokenizer, [r.chosen for r in batch], add_special_tokens=False)
        rejected = _encode(tokenizer, [r.rejected for r in batch], add_special_tokens=False)
        for record, p_ids, c_ids, r_ids in zip(batch, prompts, chosen, rejected, strict=True):
            p_ids = _fix_prompt_specials(p_ids, record.prompt, tokenizer, eos_id, eos_text)
            c_ids = _with_eos(c_ids, record.chosen, eos_id, eos_text)
            r_ids = _with_eos(r_ids, record.rejected, eos_id, eos_text)
            fitted = _truncate(p_ids, c_ids, r_ids, settings)
            if isinstance(fitted, SkippedRow):
                out.skipped.append(fitted._replace(path=record.path, row=record.row))
                continue
            out.pairs.append(_pair(record, *fitted))
            out.records.append(record)
    return out


def _eos(tokenizer: Any) -> tuple[int, str]:
    eos_id, eos_text = getattr(tokenizer, "eos_token_id", None), getattr(tokenizer, "eos_token", None)
    if eos_id is None or eos_text is None:
        raise ConfigError(
            "tokenizer.eos_token", "the tokenizer has no EOS token, which ends every completion; set one"
        )
    return int(eos_id), str(eos_text)


def _encode(tokenizer: Any, texts: list[str], *, add_special_tokens: bool) -> list[list[int]]:
    if not texts:
        return []
    # verbose=False: lengths beyond model_max_length are handled by the settings, not worth a warning here.
    encoded = tokenizer(
        texts, add_special_tokens=add_special_tokens, return_attention_mask=False, verbose=False
    )
    return [ids if isinstance(ids, list) else list(ids) for ids in encoded["input_ids"]]


def _encode_prompts(batch: Sequence[PreferenceRecord], tokenizer: Any) -> list[list[int]]:
    """Text prompts with the tokenizer's special tokens, chat prompts (template-rendered) without."""
    out: list[list[int]] = [[] for _ in batch]
    for is_chat in (False, True):
        positions = [i for i, r in enumerate(batch) if r.is_chat == is_chat]
        encoded = _encode(tokenizer, [batch[i].prompt for i in positions], add_special_tokens=not is_chat)
        for i, ids in zip(positions, encoded, strict=True):
            out[i] = ids
    return out


def _fix_prompt_specials(ids: list[int], text: str, tokenizer: Any, eos_id: int, eos_text: str) -> list[int]:
    bos_id = getattr(tokenizer, "bos_token_id", None)
    if bos_id is not None and len(ids) >= 2 and ids[0] == bos_id and ids[1] == bos_id:
        ids = ids[1:]
    if ids and ids[-1] == eos_id and not text.rstrip().endswith(eos_text):
        ids = ids[:-1]  # a prompt must not end the sequence before its completion
    return ids


def _with_eos(ids: list[int], text: str, eos_id: int, eos_text: str) -> list[int]:
    if (ids and ids[-1] == eos_id) or text.rstrip().endswith(eos_text):
        return ids
    return [*ids, eos_id]


def _truncate(
    prompt: list[int], chosen: list[int], rejected: list[int], s: TokenizationSettings
) -> tuple[list[int], list[int], list[int]] | SkippedRow:
    """Apply the limits (module docstring); a SkippedRow (without provenance) when the row cannot fit."""
    if not prompt:
        return SkippedRow(
            None, None, "prompt", "the prompt encodes to no tokens; give it text the tokenizer keeps"
        )
    keep_end = s.truncation_mode == "keep_end"
    if s.max_completion_length is not None:
        chosen, rejected = chosen[: s.max_completion_length], rejected[: s.max_completion_length]
    if s.max_prompt_length is not None and len(prompt) > s.max_prompt_length:
        prompt = prompt[-s.max_prompt_length :] if keep_end else prompt[: s.max_prompt_length]
    longest = max(len(chosen), len(rejected))
    if s.max_length is not None and len(prompt) + longest > s.max_length:
        if keep_end:
            room = s.max_length - longest
            if room < 1:
                return SkippedRow(
                    None,
                    None,
                    "max_length",
                    f"the longer completion has {longest} tokens, which leaves no room for the prompt within "
                    f"max_length={s.max_length}; raise max_length or set max_completion_length below it",
                )
            prompt = prompt[-room:]
        else:
            room = s.max_length - len(prompt)
            if room < 1:
                return SkippedRow(
                    None,
                    None,
                    "max_length",
                    f"the prompt has {len(prompt)} tokens, which leaves no room for the completions within "
                    f"max_length={s.max_length}; raise max_length, set max_prompt_length below it, or use "
                    "truncation_mode='keep_end'",
                )
            chosen, rejected = chosen[:room], rejected[:room]
    return prompt, chosen, rejected


def _pair(
    record: PreferenceRecord, prompt: list[int], chosen: list[int], rejected: list[int]
) -> TokenizedPair:
    pair: TokenizedPair = {"prompt_ids": prompt, "chosen_ids": chosen, "rejected_ids": rejected}
    if record.user_id is not None:
        pair["user_id"] = record.user_id
    if record.user_features is not None:
        pair["user_features"] = list(record.user_features)
    if record.group is not None:
        pair["group"] = record.group
    return pair
