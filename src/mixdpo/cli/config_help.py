"""Help text of the training options, generated from ``MixDPOConfig``'s field metadata (one source of truth
for ``mixdpo train --help`` and ``docs/config.md``)."""

from __future__ import annotations

import dataclasses
import typing

from transformers import TrainingArguments


def _type_name(hint: typing.Any) -> str:
    text = str(hint).replace("typing.", "").replace("NoneType", "None")
    return text.replace("<class '", "").replace("'>", "")


def option_rows(*, trainer_options: bool) -> list[tuple[str, str, str, str]]:
    """(name, type, default, help) of mixdpo's options, or of the Trainer options it inherits."""
    from mixdpo.trainer import MixDPOConfig

    inherited = {f.name for f in dataclasses.fields(TrainingArguments)}
    redeclared = set(vars(MixDPOConfig).get("__annotations__", {})) & inherited
    hints = typing.get_type_hints(MixDPOConfig)
    fields = [f for f in dataclasses.fields(MixDPOConfig) if f.init and not f.name.startswith("_")]
    if trainer_options:
        chosen = [f for f in fields if f.name in inherited and f.name not in redeclared]
    else:  # mixdpo's own options in declaration order, then the Trainer defaults it changes
        chosen = [f for f in fields if f.name not in inherited] + [f for f in fields if f.name in redeclared]
    rows = []
    for f in chosen:
        default = f.default if f.default is not dataclasses.MISSING else "(required)"
        if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        help_text = " ".join(str(f.metadata.get("help", "")).split())
        rows.append((f.name, _type_name(hints[f.name]), repr(default), help_text))
    return rows


def options_text(*, trainer_options: bool = False) -> str:
    """Plain-text option list for ``--help``."""
    lines = []
    for name, kind, default, text in option_rows(trainer_options=trainer_options):
        lines.append(f"  {name} ({kind}, default {default})")
        if text:
            lines.append(f"      {text}")
    return "\n".join(lines)


def options_markdown() -> str:
    """The config reference as markdown tables (``docs/config.md``)."""
    out = [
        "# Configuration reference",
        "",
        "Generated from `MixDPOConfig` by `python -m mixdpo.cli.config_help > docs/config.md`; a test keeps",
        "it in step. Options go in the YAML file given to `mixdpo train` or as `key=value` overrides.",
        "",
        "## mixdpo options",
        "",
        "| option | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for name, kind, default, text in option_rows(trainer_options=False):
        out.append(f"| `{name}` | {kind.replace('|', 'or')} | `{default}` | {text.replace('|', '/')} |")
    out += [
        "",
        "## Trainer options",
        "",
        "Every `transformers.TrainingArguments` option is accepted too (batch size, epochs, gradient",
        "accumulation, `bf16`, checkpointing, `report_to`, ...); `mixdpo train --help-trainer` lists them.",
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    print(options_markdown())
