"""What every benchmark report shares: the hardware line, replacing its own section of a markdown file,
and copying its plot and JSON next to that file."""

from __future__ import annotations

import importlib
import os
import platform
import re
import shutil
from pathlib import Path


def published_path(benchmarks_md: Path, stem: str, suffix: str) -> Path:
    """Where :func:`publish` puts a report's file: ``docs/benchmarks/<stem><suffix>`` by ``benchmarks_md``.

    The published JSON is tracked with the repository, unlike the suite's output directory: a suite run
    with ``--update-benchmarks`` in a fresh clone starts from the rows published there."""
    return benchmarks_md.parent / "docs" / "benchmarks" / f"{stem}{suffix}"


def publish(files: list[Path | None], benchmarks_md: Path, stem: str) -> list[str | None]:
    """Copy each file (a plot, the JSON) to :func:`published_path`; returns their paths relative to
    ``benchmarks_md`` (None for a file that is None), for the report's links."""
    out: list[str | None] = []
    for path in files:
        if path is None:
            out.append(None)
            continue
        target = published_path(benchmarks_md, stem, path.suffix)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        out.append(target.relative_to(benchmarks_md.parent).as_posix())
    return out


def hardware(libraries: tuple[str, ...] = ("torch", "transformers", "trl", "peft")) -> str:
    """CPU model (or GPU name), core count and the versions of ``libraries`` that are installed."""
    import torch

    from mixdpo import __version__

    if torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    else:
        device = platform.processor() or platform.machine()
        try:
            names = re.findall(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
            device = names[0].strip() if names else device
        except OSError:
            pass
        device += f", {os.cpu_count()} cores"
    versions = []
    for name in libraries:
        try:
            versions.append(f"{name} {importlib.import_module(name).__version__}")
        except ImportError:
            continue
    return f"{device}; Python {platform.python_version()}, {', '.join(versions)}, mixdpo {__version__}"


def replace_section(path: Path, body: str, begin: str, end: str) -> None:
    """Replace the part of ``path`` between the ``begin`` and ``end`` markers by ``body`` (appended, with
    the markers, when absent), leaving everything else as it was."""
    text = path.read_text() if path.exists() else "# mixdpo benchmarks\n"
    section = f"{begin}\n{body.rstrip()}\n{end}"
    if begin in text and end in text:
        start = text.index(begin)
        stop = text.index(end) + len(end)
        text = text[:start] + section + text[stop:]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)
