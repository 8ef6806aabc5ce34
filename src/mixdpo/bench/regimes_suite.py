"""Running ``mixdpo bench regimes`` into one document: resumable per (seed, regime), and per case within
``many-users``; a settings change re-measures only the regimes it touches."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from mixdpo.bench.regimes import HYPOTHESES, Log, RegimeSettings, run_few_shot_users, run_many_users
from mixdpo.errors import ConfigError

REGIMES = ("few-shot-users", "many-users")
_KEYS = {"few-shot-users": "rows", "many-users": "many_users"}
_PARTIAL = "many_users_measured"  # many-users rows of a seed whose configurations are not all measured yet
# the settings only one regime reads: changing one re-measures that regime and keeps the other's rows
_OWN = {
    "few-shot-users": ("task_sizes", "pairs_per_user", "test_pairs_per_user", "personalize_epochs",
                       "personalize_learning_rates"),
    "many-users": ("many_users_sizes", "many_users_steps", "many_users_groups"),
}  # fmt: skip


def stale_regimes(stored: dict[str, Any] | None, wanted: dict[str, Any]) -> set[str] | None:
    """The regimes whose rows, measured with settings ``stored``, settings ``wanted`` would measure
    differently; ``None`` when nothing can be kept (no document, or another model or training budget).
    The seeds are not compared: seeds may be run one at a time into one document."""
    if stored is None:
        return None
    own = {key for keys in _OWN.values() for key in keys} | {"seeds"}
    if {k: v for k, v in stored.items() if k not in own} != {k: v for k, v in wanted.items() if k not in own}:
        return None
    return {regime for regime, keys in _OWN.items() if any(stored.get(k) != wanted.get(k) for k in keys)}


def _rows_seconds(regime: str, rows: list[dict[str, Any]]) -> float:
    """A regime's time from its rows' own clocks, for seeds measured before per-regime times were kept
    (many-users: training and scoring each case, all but writing the data; few-shot: the
    personalisations only, a lower bound)."""
    return sum(row["train_s"] if regime == "many-users" else row["personalize_s"] for row in rows)


def _drop(measured: dict[str, Any], regime: str) -> None:
    """Forget one seed's rows of ``regime`` (and their share of its wall time)."""
    rows = measured.pop(_KEYS[regime], None)
    partial = measured.pop(_PARTIAL, None) if regime == "many-users" else None
    walls = measured.setdefault("regime_wall_s", {})
    if regime in walls:
        measured["wall_s"] -= walls.pop(regime)
    elif rows is not None or partial is not None:
        other = next(r for r in REGIMES if r != regime)
        kept = measured.get(_KEYS[other]) or measured.get(_PARTIAL) or []
        measured["wall_s"] = walls.get(other, _rows_seconds(other, kept))


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def run_regimes(
    settings: RegimeSettings,
    out_dir: Path,
    *,
    regimes: tuple[str, ...] = REGIMES,
    command: str = "",
    log: Log = print,
    published: Path | None = None,
    report_only: bool = False,
) -> dict:
    """Run ``regimes`` for every seed, resumable per (seed, regime): each is written to
    ``out_dir/regimes.json`` as soon as it ends, and one measured before with the same settings is kept
    (so the regimes of a tier can be run one at a time, or seed by seed, into one report). ``many-users``
    also resumes within a seed, per case (its rows so far are saved under ``many_users_measured``). A
    change of settings only one regime reads (:func:`stale_regimes`) drops that regime's rows, for every
    seed, and keeps the other's; a change of the model or the training budget starts afresh.

    ``published``: the report's JSON in ``docs/benchmarks/`` (tracked by git, unlike ``out_dir``). Where
    ``out_dir`` holds no document of these settings the run continues from it (a fresh clone redoes
    nothing published), and it is rewritten with every save, so a stopped run's cases can be committed.

    ``report_only``: measure nothing; return the document as stored (for rewriting the report)."""
    from mixdpo.bench.sections import hardware

    unknown = sorted(set(regimes) - set(REGIMES))
    if unknown:
        raise ConfigError("regimes", f"unknown {unknown}; choose from {', '.join(REGIMES)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "regimes.json"
    wanted = json.loads(json.dumps(settings.to_dict()))  # as stored: tuples are lists in JSON

    document = _read(path)
    if stale_regimes(document.get("settings"), wanted) is None and published is not None:
        document = _read(published)
    stale = stale_regimes(document.get("settings"), wanted)

    def save() -> None:
        for target in filter(None, (path, published)):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(document, indent=2))

    if report_only:  # the stored document as it is, written where the report's links point
        if stale != set():
            where = f"{path}" + ("" if published is None else f" or {published}")
            raise ConfigError("report-only", f"nothing measured with these settings in {where}; run the "
                              "regimes without --report-only first")  # fmt: skip
        save()
        return document
    if stale is None:
        document = {"settings": wanted, "seeds": {}}
        shutil.rmtree(out_dir / "runs", ignore_errors=True)  # partial cases of other settings
    for regime in sorted(stale or ()):
        log(f"{regime}: measured with other settings, measured again")
        for seed, measured in document["seeds"].items():
            _drop(measured, regime)
            shutil.rmtree(out_dir / "runs" / f"s{seed}" / regime, ignore_errors=True)
    wanted["seeds"] = sorted(set(document["settings"]["seeds"]) | set(wanted["seeds"]))
    document["settings"] = wanted
    earlier = [c for c in document.get("commands", [document.get("command", "")]) if c and c != command]
    document |= {"command": command, "commands": [*earlier, command],
                 "hardware": hardware(("torch", "transformers", "peft")),
                 "hypotheses": HYPOTHESES}  # fmt: skip

    for seed in settings.seeds:
        measured = document["seeds"].setdefault(str(seed), {"wall_s": 0.0})
        for regime in regimes:
            if _KEYS[regime] in measured:
                log(f"{regime}, seed {seed}: measured before, kept")
                continue
            log(f"{regime}, seed {seed}")
            work_dir = out_dir / "runs" / f"s{seed}" / regime
            clock = [time.perf_counter()]

            def spent(measured: dict = measured, clock: list = clock, regime: str = regime) -> None:
                # the wall time is counted as cases are saved, so a resumed regime's total includes the
                # cases measured before it stopped
                seconds = time.perf_counter() - clock[0]
                measured["wall_s"] += seconds
                walls = measured.setdefault("regime_wall_s", {})
                walls[regime] = walls.get(regime, 0.0) + seconds
                clock[0] = time.perf_counter()

            if regime == "many-users":
                partial = measured.setdefault(_PARTIAL, [])

                def keep(row: dict[str, Any], partial: list = partial) -> None:
                    partial.append(row)
                    spent()
                    save()

                rows = run_many_users(settings, seed, work_dir, log, kept=list(partial), on_row=keep)
                del measured[_PARTIAL]
            else:
                rows = run_few_shot_users(settings, seed, work_dir, log)
            measured[_KEYS[regime]] = rows
            spent()
            shutil.rmtree(work_dir, ignore_errors=True)
            save()
    for folder in sorted((out_dir / "runs").glob("**"), reverse=True):  # leftovers: empty seed folders
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return document
