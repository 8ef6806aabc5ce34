"""Vocabularies of user ids (rows of the gate's user-embedding table) and of hidden group labels.

A :class:`UserVocab` is built from the training rows and saved with the model: the same user id must
map to the same embedding row at evaluation and when the gate is refitted for new users. Ids are
sorted, so the mapping does not depend on the order of the rows. An id the vocabulary has not seen
maps to :data:`~mixdpo.batch.UNKNOWN_USER` (-1). :class:`GroupVocab` does the same for the hidden group
labels that evaluation scores expert assignments against (never used for training).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from mixdpo.batch import UNKNOWN_USER
from mixdpo.errors import DataError

_FORMAT_VERSION = 1
_V = TypeVar("_V", bound="_Vocab")


class _Vocab:
    """Label (str) -> index 0..n-1, with -1 for labels it has not seen."""

    kind: ClassVar[str] = "label"

    def __init__(self, labels: Iterable[str | int]):
        self._labels = sorted({str(label) for label in labels})
        self._index = {label: i for i, label in enumerate(self._labels)}

    @classmethod
    def from_labels(cls: type[_V], labels: Iterable[str | int | None]) -> _V:
        """Build from labels (ints become strings; ``None`` — rows without one — is ignored)."""
        return cls(label for label in labels if label is not None)

    @property
    def labels(self) -> list[str]:
        """The labels in index order."""
        return list(self._labels)

    def index(self, label: str | int) -> int:
        """The label's index, or ``UNKNOWN_USER`` (-1) when the vocabulary has not seen it."""
        return self._index.get(str(label), UNKNOWN_USER)

    def __len__(self) -> int:
        return len(self._labels)

    def __contains__(self, label: object) -> bool:
        return isinstance(label, (str, int)) and str(label) in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._labels)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.labels == self.labels  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((self.kind, tuple(self._labels)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} {self.kind}s)"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description (what :meth:`save` writes)."""
        return {"kind": self.kind, "version": _FORMAT_VERSION, "labels": self._labels}

    @classmethod
    def from_dict(cls: type[_V], data: dict[str, Any], *, path: str | None = None) -> _V:
        """Inverse of :meth:`to_dict`; DataError when ``data`` is not a vocabulary of this kind."""
        if (
            not isinstance(data, dict)
            or data.get("kind") != cls.kind
            or not isinstance(data.get("labels"), list)
        ):
            found = data.get("kind") if isinstance(data, dict) else type(data).__name__
            raise DataError(
                f"not a {cls.kind} vocabulary (expected kind '{cls.kind}' and a list of labels; "
                f"found {found!r})",
                path=path,
            )
        if data.get("version") != _FORMAT_VERSION:
            raise DataError(
                f"{cls.kind} vocabulary format version {data.get('version')!r} is not supported "
                f"(this mixdpo reads version {_FORMAT_VERSION})",
                path=path,
            )
        return cls(data["labels"])

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the vocabulary as JSON."""
        Path(path).write_text(
            json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )

    @classmethod
    def load(cls: type[_V], path: str | os.PathLike[str]) -> _V:
        """Read a vocabulary written by :meth:`save`."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataError(f"cannot read the {cls.kind} vocabulary ({e})", path=str(path)) from None
        return cls.from_dict(data, path=str(path))


class UserVocab(_Vocab):
    """User id -> row of the gate's user-embedding table; unseen ids -> ``UNKNOWN_USER`` (-1)."""

    kind: ClassVar[str] = "user"


class GroupVocab(_Vocab):
    """Hidden group label -> integer class, for evaluation only; unseen labels -> -1."""

    kind: ClassVar[str] = "group"
