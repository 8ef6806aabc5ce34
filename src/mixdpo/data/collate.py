"""Pad tokenized pairs into the batch dict of :mod:`mixdpo.batch` (no tokenization here: it is cheap).

For B pairs the batch stacks 2B sequences: rows 0..B-1 are prompt + chosen, rows B..2B-1 prompt +
rejected, in the same pair order. With right padding a row is ``[prompt, completion, pad...]``; with left
padding ``[pad..., prompt, completion]``. ``completion_mask`` is 1 exactly on the completion tokens
(EOS included), ``attention_mask`` on prompt and completion. The prompt alone is padded on the same side
into ``prompt_input_ids`` / ``prompt_attention_mask`` [B, Tp].

Optional keys appear when the pairs carry the data: ``example_index`` (pairs from a
:class:`~mixdpo.data.dataset.PreferenceDataset`), ``user_ids`` (needs a user vocabulary; unseen users
become ``UNKNOWN_USER``), ``user_features`` (float32), ``group`` (needs a group vocabulary) and
precomputed ``ref_chosen_logps`` / ``ref_rejected_logps``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from mixdpo import batch as keys
from mixdpo.data.users import GroupVocab, UserVocab
from mixdpo.errors import ConfigError, DataError


class PreferenceCollator:
    """Collate function for a ``DataLoader`` over tokenized pairs.

    Args:
        pad_token_id: id written into padding positions (masked out everywhere).
        padding_side: ``"right"`` or ``"left"`` (consumers take positions from the attention mask).
        user_vocab: maps each pair's ``user_id`` to ``user_ids``; without it no ``user_ids`` are produced.
        group_vocab: maps each pair's ``group`` to ``group``; without it no ``group`` is produced.
        pad_to_multiple_of: round the padded lengths T and Tp up to a multiple of this (tensor cores).
    """

    def __init__(
        self,
        pad_token_id: int,
        padding_side: str = "right",
        user_vocab: UserVocab | None = None,
        group_vocab: GroupVocab | None = None,
        pad_to_multiple_of: int | None = None,
    ):
        if not isinstance(pad_token_id, int) or isinstance(pad_token_id, bool):
            raise ConfigError("pad_token_id", f"must be an integer token id; got {pad_token_id!r}")
        if padding_side not in ("right", "left"):
            raise ConfigError("padding_side", f"must be 'right' or 'left'; got {padding_side!r}")
        if pad_to_multiple_of is not None and (
            not isinstance(pad_to_multiple_of, int) or pad_to_multiple_of < 1
        ):
            raise ConfigError(
                "pad_to_multiple_of", f"must be a positive integer or None; got {pad_to_multiple_of!r}"
            )
        self.pad_token_id = pad_token_id
        self.padding_side = padding_side
        self.user_vocab = user_vocab
        self.group_vocab = group_vocab
        self.pad_to_multiple_of = pad_to_multiple_of

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, **kwargs: Any) -> PreferenceCollator:
        """A collator padding with the tokenizer's pad token (its EOS when it has none, as TRL does)."""
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad is None:
            raise ConfigError(
                "pad_token_id", "the tokenizer has neither a pad nor an EOS token; pass pad_token_id"
            )
        kwargs.setdefault("padding_side", getattr(tokenizer, "padding_side", "right"))
        return cls(int(pad), **kwargs)

    def __call__(self, pairs: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """Pad ``pairs`` (dicts with ``prompt_ids``, ``chosen_ids``, ``rejected_ids``) into a batch."""
        if not pairs:
            raise ValueError("cannot collate an empty list of pairs")
        prompts = [list(p["prompt_ids"]) for p in pairs]
        sequences = [prompt + list(p["chosen_ids"]) for prompt, p in zip(prompts, pairs, strict=True)]
        sequences += [prompt + list(p["rejected_ids"]) for prompt, p in zip(prompts, pairs, strict=True)]
        prompt_lengths = [len(prompt) for prompt in prompts] * 2

        input_ids, attention_mask, offsets = self._pad(sequences)
        positions = torch.arange(input_ids.shape[1])
        completion_start = offsets + torch.tensor(prompt_lengths)
        completion_mask = (positions >= completion_start[:, None]).long() * attention_mask
        prompt_input_ids, prompt_attention_mask, _ = self._pad(prompts)

        out = {
            keys.INPUT_IDS: input_ids,
            keys.ATTENTION_MASK: attention_mask,
            keys.COMPLETION_MASK: completion_mask,
            keys.PROMPT_INPUT_IDS: prompt_input_ids,
            keys.PROMPT_ATTENTION_MASK: prompt_attention_mask,
        }
        out.update(self._extras(pairs))
        return out

    def _pad(self, sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """[N, T] ids and attention mask, and each row's offset (index of its first real token)."""
        lengths = torch.tensor([len(s) for s in sequences])
        width = int(lengths.max())
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        pad = self.pad_token_id
        if self.padding_side == "right":
            rows = [s + [pad] * (width - len(s)) for s in sequences]
            offsets = torch.zeros_like(lengths)
        else:
            rows = [[pad] * (width - len(s)) + s for s in sequences]
            offsets = width - lengths
        positions = torch.arange(width)
        attention = ((positions >= offsets[:, None]) & (positions < (offsets + lengths)[:, None])).long()
        return torch.tensor(rows, dtype=torch.long), attention, offsets

    def _extras(self, pairs: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        if _all_have(pairs, "example_index"):
            out[keys.EXAMPLE_INDEX] = torch.tensor([int(p["example_index"]) for p in pairs], dtype=torch.long)
        if self.user_vocab is not None:
            ids = _required(pairs, "user_id", "the gate reads user ids (a user_vocab was given)")
            out[keys.USER_IDS] = torch.tensor([self.user_vocab.index(u) for u in ids], dtype=torch.long)
        if self.group_vocab is not None:
            groups = _required(pairs, "group", "a group_vocab was given")
            out[keys.GROUP] = torch.tensor([self.group_vocab.index(g) for g in groups], dtype=torch.long)
        if _all_have(pairs, "user_features"):
            features = [list(p["user_features"]) for p in pairs]
            if len({len(f) for f in features}) > 1:
                raise DataError(
                    f"user features differ in length within a batch ({sorted({len(f) for f in features})}); "
                    "every row needs the same number of features",
                    field="user_features",
                )
            out[keys.USER_FEATURES] = torch.tensor(features, dtype=torch.float32)
        for name in (keys.REF_CHOSEN_LOGPS, keys.REF_REJECTED_LOGPS):
            if _all_have(pairs, name):
                out[name] = torch.tensor([p[name] for p in pairs], dtype=torch.float32)
        return out


def _all_have(pairs: Sequence[Mapping[str, Any]], key: str) -> bool:
    """True when every pair has ``key``, False when none has; a mix is a DataError (mixed datasets)."""
    count = sum(key in p for p in pairs)
    if 0 < count < len(pairs):
        raise DataError(
            f"some pairs in the batch have '{key}' and others do not; use it for all rows or none"
        )
    return count == len(pairs)


def _required(pairs: Sequence[Mapping[str, Any]], key: str, why: str) -> list[Any]:
    if not _all_have(pairs, key):
        raise DataError(f"the pairs have no '{key}' but {why}; add a '{key}' column to the data", field=key)
    return [p[key] for p in pairs]
