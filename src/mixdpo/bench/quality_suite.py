"""Run a tier of quality cases and write ``quality.json``, ``quality.md``, the plot and (optionally) the
``BENCHMARKS.md`` section. Resumable: cases already in ``quality.json`` (same settings) are not rerun."""

from __future__ import annotations

import datetime
import json
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mixdpo.bench.quality import run_quality_case
from mixdpo.bench.quality_cases import QualityTier
from mixdpo.bench.quality_report import (
    SECTION_BEGIN,
    SECTION_END,
    accuracy_table,
    check_targets,
    generation_table,
    plot_accuracy,
    targets_table,
)
from mixdpo.bench.sections import hardware, replace_section

Log = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _previous_rows(path: Path, settings: dict[str, Any]) -> list[dict]:
    if not path.is_file():
        return []
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError:
        return []
    if document.get("settings") != settings:
        return []  # other settings: nothing to reuse
    return [r for r in document.get("rows", []) if r.get("error") is None]


def run_quality_suite(
    tier_name: str,
    tier: QualityTier,
    out_dir: Path,
    *,
    benchmarks_md: Path | None = None,
    command: str = "",
    keep_runs: bool = False,
    log: Log = _stderr,
) -> dict[str, Any]:
    """Train and evaluate every case of ``tier`` (skipping those already measured in ``out_dir``); write
    ``out_dir/quality.json``, ``quality.md`` and ``quality.png``; replace the quality section of
    ``benchmarks_md`` when given. Returns the JSON document."""
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    settings = tier.settings.to_dict()
    done = {
        json.dumps(r["case"], sort_keys=True): r for r in _previous_rows(out_dir / "quality.json", settings)
    }
    rows: list[dict[str, Any]] = []
    document: dict[str, Any] = {
        "tier": tier_name,
        "command": command,
        "date": datetime.date.today().isoformat(),
        "hardware": hardware(("torch", "transformers", "peft")),
        "settings": settings,
        "models": list(tier.models),
        "seeds": list(tier.seeds),
        "wall_s": 0.0,
        "rows": rows,
    }
    for i, case in enumerate(tier.cases, 1):
        key = json.dumps(case.to_dict(), sort_keys=True)
        if key in done:
            rows.append(done[key])
            log(f"[{i}/{len(tier.cases)}] {case.name}: measured before, kept")
            continue
        log(f"[{i}/{len(tier.cases)}] {case.name}")
        work_dir = (
            out_dir / "runs" / f"{case.model.replace(':', '-')}" / case.task / f"{case.method}-s{case.seed}"
        )
        try:
            row = run_quality_case(case, tier.settings, work_dir)
            ev = row["eval"]
            accuracy = ev.get("mixture_accuracy") or 0.0
            log(f"  accuracy {accuracy:.3f}, per group {ev.get('per_group_accuracy')}, {row['wall_s']:.0f} s")
        except Exception as err:  # a failed case is reported in the table, the others still run
            row = {"case": case.to_dict(), "error": f"{type(err).__name__}: {err}"}
            log(f"  failed: {row['error']}\n{traceback.format_exc()}")
        finally:
            if not keep_runs:
                shutil.rmtree(work_dir, ignore_errors=True)
        rows.append(row)
        document["wall_s"] = time.perf_counter() - started
        (out_dir / "quality.json").write_text(json.dumps(document, indent=2))
    if not keep_runs:
        shutil.rmtree(out_dir / "runs", ignore_errors=True)
    plot = plot_accuracy(rows, out_dir / "quality.png")
    document["wall_s"] = time.perf_counter() - started
    (out_dir / "quality.json").write_text(json.dumps(document, indent=2))
    (out_dir / "quality.md").write_text(report_markdown(document, plot.name if plot else None))
    if benchmarks_md is not None:
        image = None
        if plot is not None:
            image = benchmarks_md.parent / "docs" / "benchmarks" / f"quality-{tier_name}.png"
            image.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(plot, image)
            image = image.relative_to(benchmarks_md.parent).as_posix()
        replace_section(benchmarks_md, report_markdown(document, image), SECTION_BEGIN, SECTION_END)
    return document


def report_markdown(document: dict[str, Any], image: str | None = None) -> str:
    """The quality report as markdown: how it was made, the targets, the tables and the plot."""
    s = document["settings"]
    rows = document["rows"]
    failed = [r for r in rows if r.get("error")]
    failures = "".join(f"- {r['case']}: {r['error']}\n" for r in failed)
    left_out = sum(v["left_out"] for r in rows if not r.get("error") for v in (r.get("pairs") or {}).values())
    read = sum(v["read"] for r in rows if not r.get("error") for v in (r.get("pairs") or {}).values())
    return (
        f"## Quality: DPO vs Mix-DPO vs MoE-DPO on the sampled tasks ({document['tier']} tier)\n\n"
        f"Command: `{document['command']}` ({document['date']}, "
        f"wall time {document['wall_s'] / 60:.1f} min)\n\n"
        f"Hardware and versions: {document['hardware']}.\n\n"
        f"Models {', '.join(f'`{m}`' for m in document['models'])}; seeds {document['seeds']} (each seed "
        f"rebuilds the task's splits and reinitialises training); every method trains LoRA r={s['lora_r']} "
        f"experts for {s['max_steps']} steps of {s['batch']} pairs with beta={s['beta']} (learning rate "
        f"{s['learning_rate']}, {s['random_learning_rate']} for random models). Accuracies are on held-out "
        f"pairs (prompts training never saw); mean ± sample standard deviation over seeds. Generation: "
        f"{s['generation_prompts']} held-out prompts, {s['max_new_tokens']} new tokens, top-p 0.95, gains "
        f"are the mean reward of the generated text minus the reference model's on the same prompts. "
        f"Pairs left out of training and evaluation (too long for max_length={s['max_length']}, "
        f"{s['random_max_length']} for byte-level random models): {left_out} of {read}.\n\n"
        f"### Targets\n\n{targets_table(check_targets(rows))}\n"
        f"### Held-out preference accuracy\n\n{accuracy_table(rows)}\n"
        + (f"![per-group accuracy]({image})\n\n" if image else "")
        + f"### Generated text: reward gain over the reference model\n\n{generation_table(rows)}"
        + (f"\n### Failed cases\n\n{failures}" if failures else "")
    )
