"""Tables, target checks and the ``BENCHMARKS.md`` section of ``mixdpo bench speed`` (ratios, not seconds:
the machines are shared and noisy, so every number that matters is a ratio measured in the same run)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixdpo.bench.sections import replace_section
from mixdpo.bench.speed_cases import SpeedCase

SECTION_BEGIN = "<!-- mixdpo bench speed: begin -->"
SECTION_END = "<!-- mixdpo bench speed: end -->"


def _case(row: dict[str, Any]) -> SpeedCase:
    return SpeedCase(**row["case"])


def find(rows: list[dict], case: SpeedCase) -> dict | None:
    """The measured row of ``case`` (None if it was not run or failed)."""
    for row in rows:
        if _case(row) == case and row.get("error") is None:
            return row
    return None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def with_ratios(rows: list[dict]) -> list[dict]:
    """Each row plus ``time_vs_trl``, ``memory_vs_trl`` (its TRL counterpart) and ``time_vs_k1``,
    ``memory_vs_k1`` (the same method with K = 1)."""
    out = []
    for row in rows:
        case = _case(row)
        trl = find(rows, case.trl_counterpart())
        k1 = find(rows, case.k1_counterpart())
        if row.get("error"):
            trl = k1 = None
        extra = {
            "time_vs_trl": _ratio(row.get("step_s"), trl and trl["step_s"]),
            "memory_vs_trl": _ratio(row.get("peak_mb"), trl and trl["peak_mb"]),
            "time_vs_k1": _ratio(row.get("step_s"), k1 and k1["step_s"]),
            "memory_vs_k1": _ratio(row.get("peak_mb"), k1 and k1["peak_mb"]),
            # the same ratios of the *needed* FLOPs: the floor of a time ratio on compute-bound hardware
            "work_vs_trl": _ratio(row.get("analytic_flops"), trl and trl["analytic_flops"]),
            "work_vs_k1": _ratio(row.get("analytic_flops"), k1 and k1["analytic_flops"]),
        }
        out.append({**row, **extra})
    return out


def _fmt(value: float | None, spec: str = ".2f", suffix: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{suffix}"


def markdown_table(rows: list[dict], roofline_flops: float) -> str:
    """One line per case: step time and peak memory with their ratios, passes by kind, FLOPs, FLOP/s."""
    header = (
        "| case | step s | × TRL | × K=1 | peak MiB | × TRL | × K=1 | passes trunk / expert / ref "
        "| GFLOP executed (needed) | GFLOP/s | % of matmul peak |\n"
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|\n"
    )
    lines = []
    for row in with_ratios(rows):
        case = _case(row)
        name = case.name + (f" [{case.batch}×{case.length}]" if case.batch or case.length else "")
        if row.get("error"):
            lines.append(f"| {name} | failed: {row['error'][:80]} |" + " |" * 10)
            continue
        passes = row["passes"]
        p = f"{passes['trunk']:.2f} / {passes['expert']:.2f} / {passes['reference']:.2f}"
        rate = row["analytic_flops"] / row["step_s"] if row["step_s"] else None
        lines.append(
            f"| {name} | {row['step_s']:.3f} | {_fmt(row['time_vs_trl'])} | {_fmt(row['time_vs_k1'])} "
            f"| {row['peak_mb']:.0f} | {_fmt(row['memory_vs_trl'])} | {_fmt(row['memory_vs_k1'])} | {p} "
            f"| {row['executed_flops'] / 1e9:.1f} ({row['analytic_flops'] / 1e9:.1f}) "
            f"| {_fmt(rate and rate / 1e9, '.1f')} "
            f"| {_fmt(rate and 100 * rate / roofline_flops, '.0f', '%')} |"
        )
    return header + "\n".join(lines) + "\n"


@dataclass(frozen=True)
class TargetCheck:
    """One target of the performance issue, its measured value and whether it was met."""

    target: str
    measured: str
    met: bool | None  # None: not measured in this run
    floor: str = "—"  # the ratio of needed FLOPs, for time targets

    def line(self) -> str:
        verdict = {True: "met", False: "**missed**", None: "not measured"}[self.met]
        return f"| {self.target} | {self.measured} | {self.floor} | {verdict} |"


def check_targets(rows: list[dict], roofline_flops: float) -> list[TargetCheck]:
    """The issue's targets, each with the ratio this run measured."""
    rows = with_ratios(rows)
    checks: list[TargetCheck] = []

    def add(
        target: str,
        values: list[float | None],
        limit: float,
        floors: list[float | None] | None = None,
        fmt: str = "{:.2f}×",
    ) -> None:
        got = [v for v in values if v is not None]
        if not got:
            checks.append(TargetCheck(target, "—", None))
            return
        floor = ", ".join(fmt.format(v) for v in floors or [] if v is not None) or "—"
        checks.append(TargetCheck(target, ", ".join(fmt.format(v) for v in got), max(got) <= limit, floor))

    def rows_of(**match: Any) -> list[dict]:
        selected = []
        for row in rows:
            case = _case(row)
            if row.get("error") is None and all(getattr(case, k) == v for k, v in match.items()):
                selected.append(row)
        return selected

    for method in ("lora", "independent"):
        k1 = rows_of(library="mixdpo", method=method, experts=1, batch=None, checkpointing=False)
        add(
            f"mixdpo {method} K=1 step time ≤ 1.0× TRL (cached, live ref)",
            [r["time_vs_trl"] for r in k1],
            1.0,
            [r["work_vs_trl"] for r in k1],
        )
        add(f"mixdpo {method} K=1 peak memory ≤ 1.0× TRL", [r["memory_vs_trl"] for r in k1], 1.0)
    heads4 = rows_of(library="mixdpo", method="heads", experts=4, batch=None, checkpointing=False)
    add(
        "heads K=4 step time ≤ 1.3× heads K=1",
        [r["time_vs_k1"] for r in heads4],
        1.3,
        [r["work_vs_k1"] for r in heads4],
    )
    for ckpt, seq in ((False, False), (True, False), (False, True), (True, True)):
        lora4 = rows_of(
            library="mixdpo", method="lora", experts=4, batch=None, checkpointing=ckpt, sequential=seq
        )
        how = " and ".join(
            [w for w, on in (("activation checkpointing", ckpt), ("sequential experts", seq)) if on]
        )
        how = f"with {how}" if how else "activations stored"
        add(f"lora K=4 peak memory ≤ 1.15× lora K=1 ({how})", [r["memory_vs_k1"] for r in lora4], 1.15)
    for method in ("lora", "independent"):
        k8 = rows_of(library="mixdpo", method=method, experts=8, cached_reference=True, sequential=False)
        add(
            f"{method} K=8 step time ≤ 8.4× K=1 (cached ref)",
            [r["time_vs_k1"] for r in k8],
            8.4,
            [r["work_vs_k1"] for r in k8],
        )
    big = [r for r in rows_of(library="mixdpo", experts=1, batch=8, length=256)]
    rates = [r["analytic_flops"] / r["step_s"] / roofline_flops for r in big]
    if rates:
        met = min(rates) >= 0.5
        shown = ", ".join(f"{_case(r).method} {100 * v:.0f}%" for r, v in zip(big, rates, strict=True))
        checks.append(TargetCheck("expert fwd/bwd ≥ 50% of matmul peak (batch 8 × 256)", shown, met))
    else:
        checks.append(TargetCheck("expert fwd/bwd ≥ 50% of matmul peak (batch 8 × 256)", "—", None))
    return checks


def targets_table(checks: list[TargetCheck]) -> str:
    return (
        "| target | measured | needed FLOPs ratio | verdict |\n|---|---|---|---|\n"
        + "\n".join(c.line() for c in checks)
        + "\n"
    )


def update_section(path: Path, body: str) -> None:
    """Replace (or append) the speed section of a markdown file, leaving everything else as it was."""
    replace_section(path, body, SECTION_BEGIN, SECTION_END)
