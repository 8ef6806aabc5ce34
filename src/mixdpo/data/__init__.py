"""Preference data: read TRL-format rows from files or the Hub, check them, tokenize, and collate batches.

The pipeline, one module per step (each step keeps every row's file and row number for its errors)::

    load_preference_rows ─> validate_rows ─> to_record ─> tokenize_rows ─> PreferenceDataset ─> Collator
       (load.py)           (validate.py)   (formats.py)  (tokenize.py)    (dataset.py)       (collate.py)

:func:`build_preference_dataset` runs the first five in one call. User-id and group vocabularies are in
``users.py``, the file readers in ``files.py``, the record types in ``rows.py``; the batch the collator
produces is specified in :mod:`mixdpo.batch`.
"""

from __future__ import annotations

from mixdpo.data.collate import PreferenceCollator
from mixdpo.data.dataset import BuildReport, PreferenceDataset, build_preference_dataset
from mixdpo.data.formats import ColumnSpec, extract_prompt, is_conversational, render_chat, to_record
from mixdpo.data.load import load_preference_rows
from mixdpo.data.rows import PreferenceRecord, RawRow, SkippedRow, TokenizedPair
from mixdpo.data.tokenize import TokenizationSettings, TokenizedRows, tokenize_pair, tokenize_rows
from mixdpo.data.users import GroupVocab, UserVocab
from mixdpo.data.validate import validate_rows

__all__ = [
    "BuildReport",
    "ColumnSpec",
    "GroupVocab",
    "PreferenceCollator",
    "PreferenceDataset",
    "PreferenceRecord",
    "RawRow",
    "SkippedRow",
    "TokenizationSettings",
    "TokenizedPair",
    "TokenizedRows",
    "UserVocab",
    "build_preference_dataset",
    "extract_prompt",
    "is_conversational",
    "load_preference_rows",
    "render_chat",
    "to_record",
    "tokenize_pair",
    "tokenize_rows",
    "validate_rows",
]
