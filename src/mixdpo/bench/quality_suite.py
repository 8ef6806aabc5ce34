"""Run a tier of quality cases and write ``quality.json``, ``quality.md``, the plot and (optionally) the
``BENCHMARKS.md`` section. Resumable: cases already in ``quality.json`` (same settings) are not rerun, nor,
when the section is updated, those in the published JSON (so a fresh clone continues the published tier)."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mixdpo.bench import quality_ablations, quality_cases
from mixdpo.bench.quality import run_quality_case, training_options
from mixdpo.bench.quality_cases import QualityCase, QualitySettings, QualityTier
from mixdpo.bench.quality_coverage import coverage_markdown
from mixdpo.bench.quality_regimes import regimes_markdown
from mixdpo.bench.quality_report import (
    SECTION_BEGIN,
    SECTION_END,
    accuracy_table,
    baseline_table,
    check_targets,
    generation_table,
    plot_accuracy,
    targets_table,
)
from mixdpo.bench.sections import hardware, publish, published_path, replace_section
from mixdpo.bench.verdict import TIE_RULE
from mixdpo.errors import ConfigError, TrainingInterrupted

Log = Callable[[str], None]


BASELINES_NOTE = (
    "Baselines, all single policies with the same LoRA adapters, steps, batch and beta: `dpo` (mixdpo, "
    "K = 1), `trl-dpo` (TRL's DPOTrainer), `cond-dpo` (DPO with the user id or the domain written in front "
    "of the prompt as `[user: ID] ...` / `[domain: movie] ...`), `wide-dpo` (one adapter of rank K·r: as "
    "many trainable parameters as the mixture's K adapters), `oracle-dpo` (one DPO policy per hidden "
    "group trained on that group's pairs only, each with the full budget: the upper bound a mixture "
    "approaches without labels). "
    + TIE_RULE
    + " Worst groups of rows measured before group sizes were stored count as equal shares of the "
    "held-out pairs."
)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# settings that apply to some cases only: a change invalidates those cases' rows, not the whole document
# (model_estep_warmup_steps: a per-model warm-up of older documents, replaced by gate_warmups)
_PER_CASE = ("model_learning_rates", "gate_warmups", "model_estep_warmup_steps")


def _shared(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if k not in _PER_CASE}


def _stored(path: Path) -> dict[str, Any]:
    """The JSON document at ``path`` ({} when it is missing or unreadable)."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _rows_of(document: dict[str, Any], settings: QualitySettings) -> list[dict]:
    """Rows of ``document`` measured with the same shared settings and, row by row, at the learning rate
    and warm-ups the settings now give the row's case (a per-model rate or a per-gate warm-up added later
    invalidates those rows only)."""
    if not document or _shared(document.get("settings") or {}) != _shared(settings.to_dict()):
        return []  # other settings: nothing to reuse
    then = QualitySettings.from_dict(document["settings"])
    rows = [r for r in document.get("rows", []) if r.get("error") is None]
    return [r for r in rows if _trained_with(r, then) == _case_options(r["case"], settings)]


_CASE_KEYS = ("learning_rate", "estep_warmup_steps", "gate_warmup_steps")


def _case_options(case: dict[str, Any], settings: QualitySettings) -> tuple:
    """The per-case settings ``settings`` give ``case``: its learning rate and warm-ups (None: the
    library's default gate warm-up)."""
    options = training_options(QualityCase(**case), settings, groups=1)
    return tuple(options.get(key) for key in _CASE_KEYS)


def _trained_with(row: dict[str, Any], then: QualitySettings) -> tuple:
    """The per-case settings ``row`` was trained with: stored in the row, or (rows written before it stored
    them) what its document's settings ``then`` gave its case."""
    before = _case_options(row["case"], then)
    return tuple(row.get(key, value) for key, value in zip(_CASE_KEYS, before, strict=True))


def _previous_rows(path: Path, settings: QualitySettings) -> list[dict]:
    """:func:`_rows_of` the document at ``path``."""
    return _rows_of(_stored(path), settings)


def _commands_of(document: dict[str, Any]) -> list[str]:
    return list(document.get("commands") or [document.get("command", "")]) if document else []


def run_quality_suite(
    tier_name: str,
    tier: QualityTier,
    out_dir: Path,
    *,
    benchmarks_md: Path | None = None,
    command: str = "",
    keep_runs: bool = False,
    report_only: bool = False,
    log: Log = _stderr,
) -> dict[str, Any]:
    """Train and evaluate every case of ``tier`` (skipping those already measured in ``out_dir``); write
    ``out_dir/quality.json``, ``quality.md`` and ``quality.png``; replace the quality section of
    ``benchmarks_md`` when given. Returns the JSON document.

    ``report_only``: train nothing; rewrite the report from the rows already measured (after the report
    itself changed), leaving ``command`` out of the commands that made them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = tier.settings.to_dict()
    ablations = tier.suite == "ablations"
    stem = f"quality-{tier_name}" + ("-ablations" if ablations else "")
    published = None if benchmarks_md is None else published_path(benchmarks_md, stem, ".json")
    # Rows published from another clone are kept as well as this directory's (which git does not track)
    sources = [p for p in (published, out_dir / "quality.json") if p is not None]
    done: dict[str, dict] = {}
    commands: list[str] = []
    stored: dict[str, Any] = {}  # the latest document these rows come from: its date, hardware, command
    for source in sources:
        earlier = _stored(source)
        previous = _rows_of(earlier, tier.settings)
        done |= {json.dumps(r["case"], sort_keys=True): r for r in previous}
        commands += [c for c in _commands_of(earlier) if c not in commands] if previous else []
        stored = earlier if previous else stored
    if report_only and not done:
        where = " or ".join(str(p) for p in sources)
        raise ConfigError("report-only", f"no case measured with these settings in {where}; run the "
                          "benchmark without --report-only first")  # fmt: skip
    selected = {json.dumps(case.to_dict(), sort_keys=True) for case in tier.cases}
    # Cases measured by earlier invocations with the same settings (e.g. another --models) stay in the
    # report, so a tier can be run piece by piece.
    rows: list[dict[str, Any]] = [r for key, r in done.items() if key not in selected]
    document: dict[str, Any] = {
        "tier": tier_name,
        "suite": tier.suite,
        "command": command,
        "commands": [c for c in commands if c and c != command] + [command],
        "date": datetime.date.today().isoformat(),
        "hardware": hardware(("torch", "transformers", "peft")),
        "settings": settings,
        "models": [],
        "seeds": [],
        "wall_s": 0.0,
        "rows": rows,
    }
    if report_only:  # the rows as stored, in their order, with the facts of the runs that measured them
        keep = ("command", "date", "hardware")
        rows = list(done.values())
        document |= {k: stored[k] for k in keep if k in stored} | {"commands": commands, "rows": rows}
        log(f"{len(done)} case(s) measured before; the report is rewritten from them, nothing is trained")
    for i, case in enumerate(() if report_only else tier.cases, 1):
        key = json.dumps(case.to_dict(), sort_keys=True)
        if key in done:
            rows.append(done[key])
            log(f"[{i}/{len(tier.cases)}] {case.name}: measured before, kept")
            continue
        log(f"[{i}/{len(tier.cases)}] {case.name}")
        run_name = "-".join(filter(None, (case.method, case.variant, f"s{case.seed}")))
        work_dir = out_dir / "runs" / case.model.replace(":", "-") / case.task / run_name.replace(" ", "-")
        try:
            row = run_quality_case(case, tier.settings, work_dir)
            ev = row["eval"]
            accuracy = ev.get("mixture_accuracy") or 0.0
            log(f"  accuracy {accuracy:.3f}, per group {ev.get('per_group_accuracy')}, {row['wall_s']:.0f} s")
        except (TrainingInterrupted, KeyboardInterrupt):
            # Ctrl-C / SIGTERM stops the suite, not just this case; what was measured is already saved
            # and the next run resumes after it.
            log(f"  interrupted; {len(rows)} case(s) saved in {out_dir / 'quality.json'}; rerun to resume")
            raise
        except Exception as err:  # a failed case is reported in the table, the others still run
            row = {"case": case.to_dict(), "error": f"{type(err).__name__}: {err}"}
            log(f"  failed: {row['error']}\n{traceback.format_exc()}")
        finally:
            if not keep_runs:
                shutil.rmtree(work_dir, ignore_errors=True)
        rows.append(row)
        _save(document, out_dir / "quality.json")
        if published is not None:  # each case as it is measured, so a stopped run's rows can be committed
            published.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out_dir / "quality.json", published)
    if not keep_runs:
        _remove_empty_dirs(out_dir / "runs")  # not shutil.rmtree: another invocation may be running there
    plot_rows = quality_ablations.plot_ablations if ablations else plot_accuracy
    plot = plot_rows(rows, out_dir / "quality.png")
    _save(document, out_dir / "quality.json")
    (out_dir / "quality.md").write_text(report_markdown(document, plot.name if plot else None))
    if benchmarks_md is not None:
        image, data = publish([plot, out_dir / "quality.json"], benchmarks_md, stem)
        document["published_json"] = data
        begin, end = (
            (quality_ablations.SECTION_BEGIN, quality_ablations.SECTION_END) if ablations
            else (SECTION_BEGIN, SECTION_END)
        )  # fmt: skip
        replace_section(benchmarks_md, report_markdown(document, image), begin, end)
    return document


def _save(document: dict[str, Any], path: Path) -> None:
    """Write ``document`` to ``path`` atomically, first adopting rows and commands that another invocation
    with the same settings wrote there since this one started (two runs of disjoint case sets, e.g. two
    models, can share a directory)."""
    keys = {json.dumps(r["case"], sort_keys=True) for r in document["rows"]}
    stored = _stored(path)
    theirs = _rows_of(stored, QualitySettings.from_dict(document["settings"]))
    for row in theirs:
        if json.dumps(row["case"], sort_keys=True) not in keys:
            document["rows"].append(row)
    for command in _commands_of(stored) if theirs else []:
        if command and command not in document["commands"]:
            document["commands"].insert(-1, command)
    _summarise(document)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(document, indent=2))
    os.replace(tmp, path)


def _remove_empty_dirs(root: Path) -> None:
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    if not any(root.iterdir()):
        root.rmdir()


def _summarise(document: dict[str, Any]) -> None:
    """Models and seeds of every row (in first-seen order), and the wall time summed over the cases."""
    cases = [r["case"] for r in document["rows"]]
    document["models"] = list(dict.fromkeys(c["model"] for c in cases))
    document["seeds"] = sorted({c["seed"] for c in cases})
    document["wall_s"] = sum(r.get("wall_s", 0.0) for r in document["rows"])


def _learning_rates(settings: dict[str, Any], models: list[str]) -> str:
    own = settings.get("model_learning_rates", {})
    extra = "".join(f"; {rate} for `{model}`" for model, rate in own.items() if model in models)
    return f"{settings['learning_rate']}, {settings['random_learning_rate']} for random models{extra}"


def _warmups(settings: dict[str, Any]) -> str:
    """How the mixtures' warm-ups read in the report."""
    extra = ""
    for gate, options in settings.get("gate_warmups", {}).items():
        steps = options.get("estep_warmup_steps", settings["estep_warmup_steps"])
        extra += f", {steps} with a {gate} gate"
        if "gate_warmup_steps" in options:
            extra += f" (the gate trained from step {options['gate_warmup_steps']}"
            # the library's default for gates that read the prompt (estep_prior_ramp_steps = 1)
            extra += f", ignored by the E-step until step {steps})" if "prompt" in gate else ")"
    return f"mixtures start with {settings['estep_warmup_steps']} hard E-step steps{extra}"


def report_markdown(document: dict[str, Any], image: str | None = None) -> str:
    """The quality report as markdown: how it was made, the targets, the tables and the plot."""
    s = document["settings"]
    rows = document["rows"]
    ran = document.get("commands") or [document["command"]]
    commands = "Command: " if len(ran) == 1 else "Commands, run one after another into the same directory: "
    commands += ", ".join(f"`{c}`" for c in ran)
    failed = [r for r in rows if r.get("error")]
    failures = "".join(f"- {r['case']}: {r['error']}\n" for r in failed)
    failures = f"\n### Failed cases\n\n{failures}" if failures else ""
    if document.get("published_json"):
        commands += f" (every row: `{document['published_json']}`)"
    # what of the tier's plan the rows cover (a tier run piece by piece says which pieces are in)
    plan = quality_cases.tier(document["tier"], document.get("suite", "main")).cases
    suite = " --suite ablations" if document.get("suite") == "ablations" else ""
    covered = coverage_markdown(
        rows, plan, document["tier"], f"mixdpo bench quality --tier {document['tier']}{suite}"
    )
    coverage = f"### What of the tier is measured\n\n{covered}\n"
    if document.get("suite") == "ablations":
        return quality_ablations.ablations_markdown(document, commands, image) + f"\n{coverage}" + failures
    left_out = sum(v["left_out"] for r in rows if not r.get("error") for v in (r.get("pairs") or {}).values())
    read = sum(v["read"] for r in rows if not r.get("error") for v in (r.get("pairs") or {}).values())
    return (
        f"## Quality: Mix-DPO and MoE-DPO against baselines on the sampled tasks "
        f"({document['tier']} tier)\n\n"
        f"{commands} ({document['date']}, "
        f"wall time {document['wall_s'] / 60:.1f} min summed over the cases)\n\n"
        f"Hardware and versions: {document['hardware']}.\n\n"
        f"Models {', '.join(f'`{m}`' for m in document['models'])}; seeds {document['seeds']} (each seed "
        f"rebuilds the task's splits and reinitialises training); every method trains LoRA r={s['lora_r']} "
        f"experts for {s['max_steps']} steps of {s['batch']} pairs with beta={s['beta']} (learning rate "
        f"{_learning_rates(s, document['models'])}; {_warmups(s)}). Accuracies are on "
        f"held-out pairs (prompts training never saw); mean ± sample standard deviation over seeds. "
        f"Generation: {s['generation_prompts']} held-out prompts, {s['max_new_tokens']} new tokens, top-p "
        f"0.95, gains are the mean reward of the generated text minus the reference model's on the same "
        f"prompts. "
        f"Pairs left out of training and evaluation (too long for max_length={s['max_length']}, "
        f"{s['random_max_length']} for byte-level random models): {left_out} of {read}.\n\n"
        f"{coverage}"
        f"### Targets\n\n{targets_table(check_targets(rows))}\n"
        f"### Held-out preference accuracy\n\n{accuracy_table(rows)}\n"
        f"### The mixture against the baselines\n\n{BASELINES_NOTE}\n\n{baseline_table(rows)}\n"
        + (f"![per-group accuracy]({image})\n\n" if image else "")
        + f"### Generated text: reward gain over the reference model\n\n{generation_table(rows)}\n"
        + f"### Two regimes these rows answer\n\n{regimes_markdown(rows)}"
        + failures
    )
