"""Prompt sources for ``mixdpo make-pairs``: built-in review requests for films and books (invented titles,
see :mod:`mixdpo.tasks.words`), or a user's text / JSONL file."""

from __future__ import annotations

import json
from pathlib import Path

from mixdpo.errors import ConfigError, DataError
from mixdpo.tasks.words import CONSUME, NOUNS, PROMPTS, TITLES

BUILTIN = {"builtin:movies": ("movie",), "builtin:books": ("book",), "builtin:reviews": ("movie", "book")}


def builtin_prompts(domain: str) -> list[dict[str, str]]:
    """Every (title, template) request of a domain (``movie`` or ``book``): 30 titles x 6 templates."""
    noun, (did, doing, _) = NOUNS[domain][0], CONSUME[domain]
    return [
        {"prompt": template.format(noun=noun, title=title, did=did, doing=doing), "domain": domain}
        for title in TITLES[domain]
        for template in PROMPTS
    ]


def load_prompts(source: str, limit: int | None = None) -> list[dict[str, str]]:
    """Prompts (``{"prompt", "domain"}``) from ``builtin:movies`` / ``builtin:books`` / ``builtin:reviews``
    (both, interleaved), a ``.txt`` file (one prompt per non-empty line) or a ``.jsonl`` file (a ``prompt``
    string per line, optional ``domain``)."""
    if source in BUILTIN:
        lists = [builtin_prompts(d) for d in BUILTIN[source]]
        prompts = [p for group in zip(*lists, strict=True) for p in group]
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError("prompts", f"{source!r} is neither a file nor one of {', '.join(BUILTIN)}")
        prompts = _read_file(path)
    if not prompts:
        raise DataError("no prompts found", path=source)
    return prompts[:limit] if limit else prompts


def _read_file(path: Path) -> list[dict[str, str]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".jsonl":
        return [{"prompt": line.strip(), "domain": ""} for line in text.splitlines() if line.strip()]
    prompts = []
    for row, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"invalid JSON ({e.msg})", path=str(path), row=row) from None
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("prompt"), str)
            or not data["prompt"].strip()
        ):
            raise DataError("needs a non-empty string", path=str(path), row=row, field="prompt")
        prompts.append({"prompt": data["prompt"], "domain": str(data.get("domain", ""))})
    return prompts
