"""Two of issue 9's regimes where a mixture should win, answered by the quality benchmark's own rows (the
other three, few-shot new users, unknown users and many users with few pairs, have ``mixdpo bench
regimes``): each a stated hypothesis, a sentence per model and task with the measured answer, and a count.
"""

from __future__ import annotations

from mixdpo.bench.quality_report import MIXTURE_FOR_TASK, grouped, steering_target, versus

NAMES = {"moe-dpo": "MoE-DPO", "mix-dpo": "Mix-DPO"}
ANSWERS = {"wins": "holds", "ties": "is not shown (a tie)", "loses": "fails"}
COUNTED = {"wins": "holds on", "ties": "a tie on", "loses": "fails on"}
CAPACITY = (
    "**Capacity-limited adapters.** *Hypothesis*: K LoRA experts of rank r beat one LoRA adapter of rank K·r "
    "(`wide-dpo`: the same number of trainable parameters) on conflicting preferences, so that more "
    "parameters do not explain a mixture's lead. *Measured* (held-out accuracy, mean ± spread over "
    "seeds, the tie rule above):"
)
STEERING = (
    "**Steerability (Mix-DPO, no user information).** *Hypothesis*: generating with the Mix-DPO expert that "
    "took a reward axis's pairs moves that axis's reward of generated text further than plain DPO does, on "
    "at least two of the three axes (conditioned DPO without its condition is plain DPO; multi-reward has "
    "no condition to give it). *Measured* (the multi-reward target above):"
)


def _count(outcomes: list[str], what: str) -> str:
    if not outcomes:
        return "not measured"
    parts = [f"{COUNTED[o]} {outcomes.count(o)}" for o in COUNTED if outcomes.count(o)]
    return f"{', '.join(parts)} of {len(outcomes)} {what}"


def capacity_answer(rows: list[dict]) -> str:
    """The capacity hypothesis and, per (model, task) with both measured, the mixture against one adapter of
    K times the rank; "holds" when the mixture wins on accuracy, "fails" when it loses."""
    by_case = grouped(rows)
    lines, outcomes = [], []
    for model, task in sorted({(m, t) for m, t, _ in by_case}):
        mixture = MIXTURE_FOR_TASK[task]
        mine, wide = by_case.get((model, task, mixture), []), by_case.get((model, task, "wide-dpo"), [])
        if not mine or not wide:
            continue
        cell, outcome, delta = versus(mine, wide)[0]
        outcomes.append(outcome)
        rank = wide[0].get("lora_r")
        lines.append(
            f"- `{model}` · {task}: {NAMES[mixture]} / one adapter of rank {rank}: {cell} %, "
            f"{NAMES[mixture]} {outcome} ({delta:+.1f} points): the hypothesis {ANSWERS[outcome]}."
        )
    body = "\n".join(lines) if lines else "- not measured (no `wide-dpo` rows)"
    return f"{CAPACITY}\n\n{body}\n\nIn all: {_count(outcomes, 'model-task cases')}.\n"


def steering_answer(rows: list[dict]) -> str:
    """The steerability hypothesis and, per model with Mix-DPO and DPO measured on multi-reward, the
    multi-reward target's verdict and numbers."""
    by_case = grouped(rows)
    lines, outcomes = [], []
    for model in sorted({m for m, t, _ in by_case if t == "multi-reward"}):
        mix, dpo = (
            by_case.get((model, "multi-reward", "mix-dpo"), []),
            by_case.get((model, "multi-reward", "dpo"), []),
        )
        if not mix or not dpo:
            continue
        target = steering_target(model, mix, dpo)
        if target.met is None:
            continue
        outcome = "wins" if target.met else "loses"
        outcomes.append(outcome)
        seeds = f"{len(mix)} seed" + ("s" if len(mix) > 1 else "")
        lines.append(f"- `{model}` ({seeds}): the hypothesis {ANSWERS[outcome]}: {target.measured}.")
    body = "\n".join(lines) if lines else "- not measured (no multi-reward rows of Mix-DPO and DPO)"
    return f"{STEERING}\n\n{body}\n\nIn all: {_count(outcomes, 'models')}.\n"


def regimes_markdown(rows: list[dict]) -> str:
    """Both answers, as the quality report's section body."""
    return f"{capacity_answer(rows)}\n{steering_answer(rows)}"
