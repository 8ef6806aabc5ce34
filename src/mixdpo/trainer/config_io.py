"""Read a :class:`MixDPOConfig` from YAML plus ``key=value`` overrides, and write the resolved config.

    load_config("run.yaml", ["num_experts=4", "gate=prompt+user", "report_to=[tensorboard]"])

A bare ``--flag`` means ``flag=true``. Override values are parsed as YAML scalars/lists (``4`` is an int,
``true`` a bool, ``[a, b]`` a list, ``null`` None). Keys are the config's field names; a dotted key
(``a.b=1``) sets a key inside a dict-valued field. Unknown keys and values of the wrong type are
:class:`~mixdpo.errors.ConfigError`s that name the key, say what was expected and suggest the closest
known key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import enum
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser, TrainingArguments

from mixdpo.errors import ConfigError
from mixdpo.trainer.config import MixDPOConfig

_OWN_FIELDS = {f.name for f in dataclasses.fields(MixDPOConfig)} - {
    f.name for f in dataclasses.fields(TrainingArguments)
}  # the options mixdpo adds (always written to config.yaml)


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """``["a=1", "b.c=x"]`` -> ``{"a": 1, "b": {"c": "x"}}`` (values parsed as YAML)."""
    result: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.lstrip("-").partition("=")
        if not sep and item.startswith("--") and key:
            sep, raw = "=", "true"  # a bare --flag switches a boolean option on (--skip-invalid)
        if not sep or not key:
            raise ConfigError(item, "overrides look like key=value (e.g. num_experts=4)")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as err:
            raise ConfigError(key, f"cannot parse value {raw!r}: {err}") from err
        target = result
        *parents, leaf = key.replace("-", "_").split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return result


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        return isinstance(value, list) and all(_type_ok(v, item) for v in value)
    if hint is Any:
        return True
    return isinstance(value, hint) if isinstance(hint, type) else True


_SIMPLE = (int, float, bool, str, type(None))


def _checkable(hint: Any) -> bool:
    """Plain scalars, their Optionals and lists of them (Trainer enums and dict options are left to
    TrainingArguments' own validation)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return all(_checkable(arg) for arg in typing.get_args(hint))
    if typing.get_origin(hint) is list:
        return all(_checkable(arg) for arg in typing.get_args(hint))
    return hint in _SIMPLE


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in typing.get_args(hint))
    if typing.get_origin(hint) is list:
        return f"a list of {_type_name(typing.get_args(hint)[0])}"
    return {
        type(None): "null",
        int: "an integer",
        float: "a number",
        bool: "true/false",
        str: "a string",
    }.get(hint, str(hint))


def _accepts(hint: Any, kind: type) -> bool:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_accepts(arg, kind) for arg in typing.get_args(hint))
    return hint is kind


def _coerce_yaml_scalars(values: dict[str, Any]) -> None:
    """Undo two YAML 1.1 surprises: ``3e-3`` (no dot) is read as a string, and ``no`` / ``yes`` as
    booleans (``save_strategy: no``). Strings become floats where a number is expected, booleans become
    "no" / "yes" where only a string is."""
    hints = typing.get_type_hints(MixDPOConfig)
    for key, value in values.items():
        hint = hints.get(key)
        if hint is None:
            continue
        if isinstance(value, str) and _accepts(hint, float):
            with contextlib.suppress(ValueError):  # a non-number is reported by _check with the expected type
                values[key] = float(value)
        elif isinstance(value, bool) and _accepts(hint, str) and not _accepts(hint, bool):
            values[key] = "yes" if value else "no"


def _check(values: dict[str, Any], source: str) -> None:
    hints = typing.get_type_hints(MixDPOConfig)
    known = set(hints)
    _coerce_yaml_scalars(values)
    for key, value in values.items():
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else "; see `mixdpo train --help` for the options"
            raise ConfigError(key, f"unknown option in {source}{hint}")
        if _checkable(hints[key]) and not _type_ok(value, hints[key]):
            raise ConfigError(
                key, f"expected {_type_name(hints[key])}, got {value!r} ({type(value).__name__}) in {source}"
            )


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> MixDPOConfig:
    """Build a validated :class:`MixDPOConfig` from a YAML file (optional) and ``key=value`` overrides."""
    values: dict[str, Any] = {}
    source = "the overrides"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError("config", f"file {path} not found; pass a YAML file with the run's options")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError("config", f"{path} is not valid YAML: {err}") from err
        if not isinstance(loaded, dict):
            raise ConfigError(
                "config", f"{path} must hold a mapping of option: value, got {type(loaded).__name__}"
            )
        _check(loaded, str(path))
        values = loaded
    extra = parse_overrides(overrides)
    _check(extra, "the command-line overrides")
    values = _merge(values, extra)
    try:
        (config,) = HfArgumentParser(MixDPOConfig).parse_dict(values, allow_extra_keys=False)
    except ConfigError:
        raise
    except (ValueError, TypeError, OSError) as err:
        # OSError: a Trainer option read as a file path (accelerator_config, deepspeed, ...) is not a file
        raise ConfigError("config", f"{err} (from {source})") from err
    return config


def config_to_yaml(config: MixDPOConfig) -> str:
    """The resolved config as YAML: every mixdpo option, and the Trainer options that differ from their
    defaults (so the file stays readable and loads back with :func:`load_config`)."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainingArguments)}
    out: dict[str, Any] = {}
    for f in dataclasses.fields(MixDPOConfig):
        if not f.init:
            continue
        value = getattr(config, f.name)
        if f.name not in _OWN_FIELDS and value == defaults.get(f.name, dataclasses.MISSING):
            continue
        if isinstance(value, enum.Enum):  # IntervalStrategy, SaveStrategy, ... (some subclass str)
            value = value.value
        if isinstance(value, (str, int, float, bool, list, dict)) or value is None:
            out[f.name] = value
    return yaml.safe_dump(out, sort_keys=False)
