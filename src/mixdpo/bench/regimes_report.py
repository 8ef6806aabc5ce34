"""The report of ``mixdpo bench regimes``: per regime its hypothesis, a table (mean ± spread over seeds per
method and number of pairs per new user), a sentence per row on who wins, and a plot."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from mixdpo.bench.quality_report import fmt_pair
from mixdpo.bench.regimes import METHODS
from mixdpo.bench.verdict import TIE_RULE, compare, mean_spread, seed_outcomes

SECTION_BEGIN = "<!-- mixdpo bench regimes: begin -->"
SECTION_END = "<!-- mixdpo bench regimes: end -->"
HOW = {
    "moe-dpo": "refit the gate (experts frozen)",
    "cond-dpo": "fine-tune the policy (user id in the prompt)",
    "dpo": "nothing (cannot use the labels)",
}


def _by_n_method(document: dict[str, Any]) -> dict[tuple[int, str], list[dict]]:
    out: dict[tuple[int, str], list[dict]] = defaultdict(list)
    for seed in document["seeds"].values():
        for row in seed.get("rows", []):
            out[(row["pairs_per_user"], row["method"])].append(row)
    return out


def _verdict(moe: list[dict], runs: list[dict], test_pairs: int | None = None) -> str:
    """MoE-DPO against another method on held-out accuracy: wins / ties / loses, by how many points (paired
    where the rows keep per-pair outcomes, :func:`~mixdpo.bench.verdict.compare`). ``test_pairs``: the
    held-out pairs of rows that do not say (many-users rows written before they did)."""
    if not moe:
        return "—"
    accuracies = [[r["accuracy"] for r in rows] for rows in (moe, runs)]
    pairs = [[r.get("test_pairs", test_pairs) for r in rows] for rows in (moe, runs)]
    # paired on the held-out pairs where both methods' rows kept every pair's outcome (one row per seed)
    paired = seed_outcomes(*({r["seed"]: r.get("pair_correct") for r in rows} for rows in (moe, runs)))
    outcome, delta = compare(*accuracies, *pairs, paired=paired)
    return outcome if delta is None else f"MoE-DPO {outcome} ({delta:+.1f} points)"


def _how(n: int, method: str, runs: list[dict]) -> str:
    """How a method personalised, with its learning rate where the rows say (one rate for all seeds)."""
    if n == 0 and method != "dpo":
        return "none (unknown users)"
    rates = {r.get("learning_rate") for r in runs}
    rate = rates.pop() if len(rates) == 1 else None
    return HOW[method] + (f", lr {rate:g}" if rate is not None else "")


def _worst(row: dict) -> float | None:
    per_group = row.get("per_group") or {}
    return min(per_group.values()) if per_group else None


def _seconds(values: list[float | None]) -> str:
    """Mean of the runs that recorded it ("—" when none did: rows measured before ``fit_s`` existed)."""
    known = [v for v in values if v is not None]
    return f"{sum(known) / len(known):.1f}" if known else "—"


def few_shot_table(document: dict[str, Any]) -> str:
    """One row per (pairs per new user, method), with MoE-DPO's verdict against conditioned DPO."""
    groups = _by_n_method(document)
    lines = [
        "| pairs per new user | method | personalisation | held-out accuracy % | worst group % | parameters "
        "per new user | shared parameters updated | fitting s | load + fit + evaluate s | MoE-DPO vs this |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for n in sorted({n for n, _ in groups}):
        moe = groups.get((n, "moe-dpo"), [])
        for method in METHODS:
            runs = groups.get((n, method), [])
            if not runs:
                continue
            how = _how(n, method, runs)
            verdict = _verdict(moe, runs) if method != "moe-dpo" else "—"
            cells = [
                n, method, how,
                fmt_pair(mean_spread([r["accuracy"] for r in runs])),
                fmt_pair(mean_spread([_worst(r) for r in runs])),
                f"{mean_spread([r['parameters_per_user'] for r in runs])[0]:,.0f}",
                f"{mean_spread([r['shared_parameters'] for r in runs])[0]:,.0f}",
                _seconds([r.get("fit_s", 0.0 if r["personalize_s"] == 0 else None) for r in runs]),
                _seconds([r["personalize_s"] for r in runs]),
                verdict,
            ]  # fmt: skip
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _many_users(document: dict[str, Any]) -> dict[tuple[int, str], list[dict]]:
    out: dict[tuple[int, str], list[dict]] = defaultdict(list)
    for seed in document["seeds"].values():
        for row in seed.get("many_users", []):
            out[(row["users"], row["method"])].append(row)
    return out


def many_users_table(document: dict[str, Any]) -> str:
    """One row per (number of users, method): held-out accuracy on those users' pairs, MoE-DPO's verdict."""
    groups = _many_users(document)
    eval_pairs = document.get("settings", {}).get("many_users_sizes", {}).get("eval_pairs")
    lines = ["| users | training pairs per user | method | held-out accuracy % | worst group % | training s "
             "| MoE-DPO vs this |", "|---:|---:|---|---:|---:|---:|---|"]  # fmt: skip
    for users in sorted({u for u, _ in groups}):
        moe = groups.get((users, "moe-dpo"), [])
        for method in METHODS:
            runs = groups.get((users, method), [])
            if not runs:
                continue
            verdict = _verdict(moe, runs, eval_pairs) if method != "moe-dpo" else "—"
            cells = [users, f"{runs[0]['pairs_per_user']:.1f}", method,
                     fmt_pair(mean_spread([r["accuracy"] for r in runs])),
                     fmt_pair(mean_spread([_worst(r) for r in runs])),
                     f"{mean_spread([r['train_s'] for r in runs])[0]:.0f}", verdict]  # fmt: skip
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _plot_lines(ax, groups: dict[tuple[int, str], list[dict]], xlabel: str) -> None:
    for method in METHODS:
        xs = sorted(x for x, m in groups if m == method)
        if not xs:
            continue
        stats = [mean_spread([r["accuracy"] for r in groups[(x, method)]]) for x in xs]
        ax.errorbar(xs, [m or 0.0 for m, _ in stats], yerr=[s or 0.0 for _, s in stats], marker="o",
                    capsize=3, label=method)  # fmt: skip
    ax.set_xlabel(xlabel)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)


def plot_regimes(document: dict[str, Any], path: Path) -> Path | None:
    """Two panels: held-out accuracy of new users against their labelled pairs (few-shot), and of many
    users against their number (the same training pairs spread over more users)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    few, many = _by_n_method(document), _many_users(document)
    if not few and not many:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.6))
    _plot_lines(axes[0], few, "labelled pairs per new user (0: unknown users)")
    axes[0].set_ylabel("held-out accuracy")
    axes[0].set_title("few-shot new users: gate refit vs fine-tuning", fontsize=9)
    _plot_lines(axes[1], many, "users sharing the same training pairs")
    axes[1].set_xscale("log")
    users = sorted({u for u, _ in many})
    if users:  # ticks at the measured user counts, written plainly (log-scale minor labels overlapped)
        axes[1].set_xticks(users, [str(u) for u in users])
        axes[1].minorticks_off()
    axes[1].set_title("many users, few pairs each", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _seeds_with(document: dict[str, Any], key: str) -> list[int]:
    return sorted(int(seed) for seed, measured in document["seeds"].items() if measured.get(key))


def _table_or_gap(document: dict[str, Any], key: str, table: str) -> str:
    """The table with the seeds it covers, or a line saying the regime has not been run."""
    seeds = _seeds_with(document, key)
    if not seeds:
        return "Not run yet with these settings.\n"
    return f"Seeds measured: {seeds}.\n\n{table}"


def _rates(settings: dict[str, Any]) -> str:
    """The personalisation's learning rates set per method (the rest use their run's own)."""
    rates = settings.get("personalize_learning_rates") or {}
    if not rates:
        return "; each method at its run's own learning rate"
    named = ", ".join(f"{method} at {rate:g}" for method, rate in sorted(rates.items()))
    return f"; {named}, the others at their run's own learning rate (the rate is in the table)"


def _commands(document: dict[str, Any]) -> str:
    commands = document.get("commands") or [document["command"]]
    if len(commands) == 1:
        return f"Command: `{commands[0]}`"
    return "Commands, run one after another into the same directory: " + ", ".join(f"`{c}`" for c in commands)


def regimes_markdown(document: dict[str, Any], image: str | None, tier: str, data: str | None = None) -> str:
    """The regimes report; ``image`` and ``data`` are the plot's and the JSON's paths to link."""
    s = document["settings"]
    wall = sum(seed["wall_s"] for seed in document["seeds"].values())
    q = s["quality"]
    return (
        f"## Regimes where a mixture should win ({tier} tier)\n\n"
        f"{_commands(document)} (wall time {wall / 60:.1f} min in all"
        f"{f'; every row: `{data}`' if data else ''})\n\n"
        f"Hardware and versions: {document['hardware']}.\n\n"
        f"### Few-shot new users\n\n**Hypothesis.** {document['hypotheses']['few-shot-users']}\n\n"
        f"Model `{s['model']}`; task `reviews-users` with sizes {s['task_sizes']}; "
        f"MoE-DPO (K = 2, user gate), conditioned DPO and plain DPO each train {q['max_steps']} steps of "
        f"{q['batch']} pairs (LoRA r={q['lora_r']}, beta={q['beta']}) on the training users; then every "
        f"new user's first n pairs are used for {s['personalize_epochs']:g} epochs of personalisation "
        f"(batch 8{_rates(s)}) and their "
        f"last {s['test_pairs_per_user']} pairs are the held-out test (the same for every n). *Fitting s*: "
        f"the gate refit or fine-tuning alone (for MoE-DPO: one no-grad pass of the frozen experts over "
        f"the new pairs, then the gate's steps); *load + fit + evaluate s*: the whole personalisation call, "
        f"with loading the trained run and scoring the held-out pairs. Mean ± sample "
        f"standard deviation over seeds. {TIE_RULE}\n\n"
        f"{_table_or_gap(document, 'rows', few_shot_table(document))}\n"
        + (f"![regimes]({image})\n\n" if image else "")
        + f"### Many users, few pairs each\n\n**Hypothesis.** {document['hypotheses']['many-users']}\n\n"
        f"Task `reviews-users` with sizes {s['many_users_sizes']} spread over (fans, critics) = "
        f"{[tuple(g) for g in s['many_users_groups']]}, {s['many_users_steps']} training steps (one epoch) "
        f"per method, otherwise as above; held-out pairs of the same users.\n\n"
        f"{_table_or_gap(document, 'many_users', many_users_table(document))}"
    )
