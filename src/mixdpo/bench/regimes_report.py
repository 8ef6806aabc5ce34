"""The report of ``mixdpo bench regimes``: per regime its hypothesis, a table (mean ± spread over seeds per
method and number of pairs per new user), a sentence per row on who wins, and a plot."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from mixdpo.bench.quality_report import compare, fmt_pair, mean_spread
from mixdpo.bench.regimes import METHODS

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
        for row in seed["rows"]:
            out[(row["pairs_per_user"], row["method"])].append(row)
    return out


def _worst(row: dict) -> float | None:
    per_group = row.get("per_group") or {}
    return min(per_group.values()) if per_group else None


def few_shot_table(document: dict[str, Any]) -> str:
    """One row per (pairs per new user, method), with MoE-DPO's verdict against conditioned DPO."""
    groups = _by_n_method(document)
    lines = [
        "| pairs per new user | method | personalisation | held-out accuracy % | worst group % | parameters "
        "per new user | shared parameters updated | personalisation s | MoE-DPO vs this |",
        "|---:|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for n in sorted({n for n, _ in groups}):
        moe = groups.get((n, "moe-dpo"), [])
        for method in METHODS:
            runs = groups.get((n, method), [])
            if not runs:
                continue
            how = "none (unknown users)" if n == 0 and method != "dpo" else HOW[method]
            verdict = "—"
            if method != "moe-dpo" and moe:
                outcome, delta = compare([r["accuracy"] for r in moe], [r["accuracy"] for r in runs])
                verdict = outcome if delta is None else f"MoE-DPO {outcome} ({delta:+.1f} points)"
            cells = [
                n, method, how,
                fmt_pair(mean_spread([r["accuracy"] for r in runs])),
                fmt_pair(mean_spread([_worst(r) for r in runs])),
                f"{mean_spread([r['parameters_per_user'] for r in runs])[0]:,.0f}",
                f"{mean_spread([r['shared_parameters'] for r in runs])[0]:,.0f}",
                f"{mean_spread([r['personalize_s'] for r in runs])[0]:.1f}",
                verdict,
            ]  # fmt: skip
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def many_users_table(document: dict[str, Any]) -> str:
    """One row per method: held-out accuracy on many users' pairs, with MoE-DPO's verdict."""
    by_method: dict[str, list[dict]] = defaultdict(list)
    for seed in document["seeds"].values():
        for row in seed.get("many_users", []):
            by_method[row["method"]].append(row)
    if not by_method:
        return ""
    lines = ["| method | users | training pairs per user | held-out accuracy % | worst group % | training s "
             "| MoE-DPO vs this |", "|---|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    moe = by_method.get("moe-dpo", [])
    for method in METHODS:
        runs = by_method.get(method, [])
        if not runs:
            continue
        verdict = "—"
        if method != "moe-dpo" and moe:
            outcome, delta = compare([r["accuracy"] for r in moe], [r["accuracy"] for r in runs])
            verdict = outcome if delta is None else f"MoE-DPO {outcome} ({delta:+.1f} points)"
        cells = [method, runs[0]["users"], f"{runs[0]['pairs_per_user']:.1f}",
                 fmt_pair(mean_spread([r["accuracy"] for r in runs])),
                 fmt_pair(mean_spread([_worst(r) for r in runs])),
                 f"{mean_spread([r['train_s'] for r in runs])[0]:.0f}", verdict]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def plot_few_shot(document: dict[str, Any], path: Path) -> Path | None:
    """Held-out accuracy of the new users against pairs per new user, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _by_n_method(document)
    if not groups:
        return None
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for method in METHODS:
        ns = sorted(n for n, m in groups if m == method)
        if not ns:
            continue
        stats = [mean_spread([r["accuracy"] for r in groups[(n, method)]]) for n in ns]
        ax.errorbar(ns, [m or 0.0 for m, _ in stats], yerr=[s or 0.0 for _, s in stats], marker="o",
                    capsize=3, label=f"{method}: {HOW[method]}")  # fmt: skip
    ax.set_xlabel("labelled pairs per new user")
    ax.set_ylabel("held-out accuracy of new users")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)
    ax.set_title("few-shot new users (reviews-users)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def regimes_markdown(document: dict[str, Any], image: str | None, tier: str) -> str:
    s = document["settings"]
    wall = sum(seed["wall_s"] for seed in document["seeds"].values())
    q = s["quality"]
    return (
        f"## Regimes where a mixture should win ({tier} tier)\n\n"
        f"Command: `{document['command']}` (wall time {wall / 60:.1f} min over {len(document['seeds'])} "
        f"seed(s))\n\nHardware and versions: {document['hardware']}.\n\n"
        f"### Few-shot new users\n\n**Hypothesis.** {document['hypotheses']['few-shot-users']}\n\n"
        f"Model `{s['model']}`, seeds {list(s['seeds'])}; task `reviews-users` with sizes {s['task_sizes']}; "
        f"MoE-DPO (K = 2, user gate), conditioned DPO and plain DPO each train {q['max_steps']} steps of "
        f"{q['batch']} pairs (LoRA r={q['lora_r']}, beta={q['beta']}) on the training users; then every "
        f"new user's first n pairs are used for {s['personalize_steps']} personalisation steps and their "
        f"last {s['test_pairs_per_user']} pairs are the held-out test (the same for every n). Mean ± sample "
        f"standard deviation over seeds; a difference within the larger spread (2 points with one seed) "
        f"is a tie.\n\n{few_shot_table(document)}\n"
        + (f"![few-shot new users]({image})\n\n" if image else "")
        + f"### Many users, few pairs each\n\n**Hypothesis.** {document['hypotheses']['many-users']}\n\n"
        f"Task `reviews-users` with sizes {s['many_users_sizes']}, {s['many_users_steps']} training steps "
        f"(one epoch) per method, otherwise as above; held-out pairs of the same users.\n\n"
        f"{many_users_table(document)}"
    )
