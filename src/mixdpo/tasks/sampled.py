"""Completions sampled from a real model and scored by real reward functions: the source of the tasks built
the paper's way (``multi-reward``, ``cross-domain``, ``personas``).

The package ships one such file, made by ``mixdpo make-pairs`` (command in :data:`SAMPLES_COMMAND`): 4
completions of SmolLM2-135M-Instruct for each of the 360 built-in review prompts (180 movies, 180 books),
each completion scored by every cheap reward of :mod:`mixdpo.rewards`. Any ``scored.jsonl`` that
``mixdpo make-pairs`` writes can take its place (``build_task(..., samples=path)``).

A task turns a prompt's scored completions into a labelled pair with :func:`extreme_pair`: the completion
that scores highest on one axis against the one that scores lowest, when the gap reaches a margin.
"""

from __future__ import annotations

import gzip
import json
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixdpo.errors import ConfigError, DataError

SAMPLES_FILE = Path(__file__).parent / "data" / "smollm2-reviews.scored.jsonl.gz"
SAMPLES_COMMAND = (
    "mixdpo make-pairs --out samples --prompts builtin:reviews --model builtin:smollm2-135m "
    "--rewards sentiment,readability,brevity,length,spelling,distinct_2,non_toxicity --samples 4 "
    "--max-new-tokens 48 --seed 0"
)


@dataclass(frozen=True)
class ScoredPrompt:
    """One prompt of a ``scored.jsonl``: its completions and each completion's score per reward."""

    index: int
    request: str
    domain: str
    completions: tuple[str, ...]
    scores: dict[str, tuple[float, ...]]


def _request(prompt: Any) -> str:
    """The user's message of a chat prompt (or a plain-text prompt as it is)."""
    if isinstance(prompt, str):
        return prompt
    users = [m["content"] for m in prompt if m.get("role") == "user"]
    if len(users) != 1:
        raise ValueError(f"expected one user message, got {len(users)}")
    return users[0]


def load_samples(path: str | os.PathLike[str] | None = None) -> list[ScoredPrompt]:
    """Read a ``scored.jsonl`` (optionally gzipped) of ``mixdpo make-pairs``; None: the shipped file.

    Raises:
        DataError: a missing file or a line without the fields ``make-pairs`` writes (file and line named).
    """
    path = Path(path) if path is not None else SAMPLES_FILE
    if not path.is_file():
        raise DataError(f"no such file; make one with `{SAMPLES_COMMAND}` (scored.jsonl)", path=str(path))
    opener = gzip.open if path.suffix == ".gz" else open
    out = []
    with opener(path, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                completions = tuple(str(c) for c in record["completions"])
                scores = {k: tuple(float(v) for v in vs) for k, vs in record["scores"].items()}
                if any(len(vs) != len(completions) for vs in scores.values()):
                    raise ValueError("a reward has a different number of scores than completions")
                item = ScoredPrompt(
                    int(record["index"]),
                    _request(record["prompt"]),
                    str(record.get("domain") or "?"),
                    completions,
                    scores,
                )
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise DataError(
                    f"not a scored prompt of `mixdpo make-pairs` ({e}); rerun make-pairs or remove the line",
                    path=str(path),
                    row=number,
                ) from e
            out.append(item)
    return sorted(out, key=lambda p: p.index)


def extreme_pair(
    item: ScoredPrompt, axis: str, margin: float, *, higher: bool = True
) -> tuple[str, str] | None:
    """``(chosen, rejected)``: the completion with the highest ``axis`` score against the lowest
    (``higher=False``: the lowest is chosen), or None when the gap is below ``margin`` or the two texts
    are equal. Ties go to the earlier completion, so the pair is deterministic."""
    if axis not in item.scores:
        raise ConfigError(
            "axis", f"prompt {item.index} has no {axis!r} scores; it has {', '.join(item.scores)}"
        )
    values = item.scores[axis]
    best = max(range(len(values)), key=lambda i: (values[i], -i))
    worst = min(range(len(values)), key=lambda i: (values[i], i))
    if values[best] - values[worst] < margin or item.completions[best] == item.completions[worst]:
        return None
    top, bottom = item.completions[best], item.completions[worst]
    return (top, bottom) if higher else (bottom, top)


def split_prompts(
    rng: random.Random, items: Sequence[ScoredPrompt], counts: dict[str, int], what: str
) -> dict[str, list[ScoredPrompt]]:
    """Shuffle ``items`` and cut consecutive runs of ``counts[split]`` prompts: splits share no prompt.

    Raises:
        ConfigError: fewer usable prompts than the counts add up to (``what`` says which prompts count).
    """
    needed = sum(counts.values())
    if needed > len(items):
        names = " + ".join(f"{k} {v}" for k, v in counts.items())
        raise ConfigError(
            next(iter(counts)),
            f"{names} = {needed} prompts, but only {len(items)} {what}; ask for fewer or use more samples",
        )
    shuffled = list(items)
    rng.shuffle(shuffled)
    out, start = {}, 0
    for split, n in counts.items():
        out[split], start = shuffled[start : start + n], start + n
    return out


def axis_agreement(items: Sequence[ScoredPrompt], axes: Sequence[str], margins: dict[str, float]) -> dict:
    """For each ordered pair of axes (a, b): among a's pairs, the share that b's scores rank the same way
    (b's chosen scores higher), the same way with a tie, or the other way. 1.0 "same" would mean one
    policy could follow both axes at once; the "other" share is where they pull apart."""
    out: dict[str, dict[str, float]] = {}
    for a in axes:
        for b in axes:
            if a == b:
                continue
            same = other = tie = 0
            for item in items:
                pair = extreme_pair(item, a, margins[a])
                if pair is None:
                    continue
                values = dict(zip(item.completions, item.scores[b], strict=True))
                gap = values[pair[0]] - values[pair[1]]
                same, other, tie = same + (gap > 0), other + (gap < 0), tie + (gap == 0)
            total = max(same + other + tie, 1)
            out[f"{a} vs {b}"] = {"same": same / total, "tie": tie / total, "other": other / total}
    return out
