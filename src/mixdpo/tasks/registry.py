"""The registry of built-in tasks: list them, build one, write one to disk."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixdpo.errors import ConfigError
from mixdpo.tasks import cross_domain, multi_reward, personas, reviews_domains, reviews_mixed, reviews_users
from mixdpo.tasks.base import FORMATS, TaskData


@dataclass(frozen=True)
class TaskSpec:
    """A built-in task: its name, a one-line summary, default sizes, its builder, and whether it is built
    from sampled, scored completions (:mod:`mixdpo.tasks.sampled`; the builder then takes ``samples``)."""

    name: str
    summary: str
    sizes: dict[str, int]
    build: Callable[..., TaskData]
    sampled: bool = False


TASKS: dict[str, TaskSpec] = {
    module.NAME: TaskSpec(module.NAME, module.SUMMARY, dict(module.SIZES), module.build, sampled)
    for module, sampled in (
        (reviews_users, False),
        (reviews_domains, False),
        (reviews_mixed, False),
        (multi_reward, True),
        (cross_domain, True),
        (personas, True),
    )
}


def list_tasks() -> dict[str, str]:
    """Name -> one-line description of every built-in task."""
    return {name: spec.summary for name, spec in TASKS.items()}


def task_sizes(name: str) -> dict[str, int]:
    """The default sizes of task ``name`` (the keyword arguments :func:`build_task` accepts)."""
    return dict(_spec(name).sizes)


def _spec(name: str) -> TaskSpec:
    if name not in TASKS:
        raise ConfigError("task", f"unknown task {name!r}; the built-in tasks are {', '.join(TASKS)}")
    return TASKS[name]


def build_task(
    name: str,
    *,
    seed: int = 0,
    format: str = "chat",
    samples: str | os.PathLike[str] | None = None,
    **sizes: int,
) -> TaskData:
    """Build a built-in task; the same ``(name, seed, format, sizes)`` always gives the same rows.

    Args:
        name: one of :func:`list_tasks`.
        seed: any integer; different seeds give different titles, reviews, users and orders.
        format: "chat" (conversational rows, for models with a chat template) or "text" (plain text).
        samples: tasks built from sampled completions (``multi-reward``, ``cross-domain``, ``personas``):
            a ``scored.jsonl`` of ``mixdpo make-pairs`` to build from instead of the shipped SmolLM2 samples.
        **sizes: overrides of the task's default sizes (:func:`task_sizes`), e.g. ``train_pairs=120``.

    Raises:
        ConfigError: an unknown task, format or size, or a size the task cannot build.
    """
    spec = _spec(name)
    if format not in FORMATS:
        raise ConfigError("format", f"unknown format {format!r}; use one of {', '.join(FORMATS)}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError("seed", f"must be an integer, got {seed!r}")
    unknown = sorted(set(sizes) - set(spec.sizes))
    if unknown:
        raise ConfigError(
            unknown[0], f"task {name!r} has no size {unknown[0]!r}; its sizes are {', '.join(spec.sizes)}"
        )
    for key, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(key, f"must be a non-negative integer, got {value!r}")
    if samples is not None and not spec.sampled:
        raise ConfigError("samples", f"task {name!r} is generated from word lists; it takes no samples file")
    if spec.sampled:
        return spec.build(seed, {**spec.sizes, **sizes}, format, None if samples is None else str(samples))
    return spec.build(seed, {**spec.sizes, **sizes}, format)


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_task(
    name: str,
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    format: str = "chat",
    samples: str | os.PathLike[str] | None = None,
    **sizes: int,
) -> dict[str, Path]:
    """Build a task and write it to ``out_dir`` (created if needed).

    Files: ``train.jsonl``, ``eval.jsonl`` and ``new_users.jsonl`` (one TRL row per line; a split with
    no rows gets no file, since an empty file is not a valid data source), ``README.md`` (the task's
    description) and ``task.json`` (seed, sizes, groups, recommended options, shares and ceilings).

    Returns:
        The written files by split name, plus ``"readme"`` and ``"meta"``.
    """
    task = build_task(name, seed=seed, format=format, samples=samples, **sizes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for split, rows in task.splits().items():
        path = out / f"{split}.jsonl"
        if rows:
            write_jsonl(rows, path)
            paths[split] = path
        elif path.exists():  # from an earlier build with other sizes: it would not match this one
            path.unlink()
    files = "\n".join(f"- `{path.name}`: {len(task.rows(split))} pairs" for split, path in paths.items())
    call = ", ".join(
        [repr(name), f"seed={seed}", f"format={format!r}"]
        + ([f"samples={str(samples)!r}"] if samples is not None else [])
        + [f"{k}={v}" for k, v in task.sizes.items()]
    )
    paths["readme"] = out / "README.md"
    paths["readme"].write_text(
        f"{task.description}\n## Files\n\n{files}\n- `task.json`: seed, sizes, groups, recommended options, "
        f"shares and ceilings\n\nBuilt with `build_task({call})`.\n",
        encoding="utf-8",
    )
    paths["meta"] = out / "task.json"
    paths["meta"].write_text(json.dumps(task.summary(), indent=2) + "\n", encoding="utf-8")
    return paths
