"""``cross-domain``: movie prompts want the concise sample, book prompts the detailed one (prompt gate).

Built from real samples (:mod:`mixdpo.tasks.sampled`): for a movie prompt the pair is SmolLM2's shortest
completion (chosen) against its longest (by the ``length`` reward, a gap of at least :data:`MARGIN`
words); for a book prompt the longest is chosen over the shortest. Both domains share one axis with
opposite signs, so a policy that ignores the domain gets half of the pairs wrong, and the gate has to
read the prompt to send each domain to its expert.

Defaults: 200 training pairs and 80 evaluation pairs, half movies and half books, no prompt in both.
"""

from __future__ import annotations

import random

from mixdpo.tasks.base import Pair, TaskData, check_sizes, numbers_markdown, to_row
from mixdpo.tasks.sampled import SAMPLES_COMMAND, extreme_pair, load_samples, split_prompts

NAME = "cross-domain"
SUMMARY = "sampled SmolLM2 reviews; movie prompts prefer the shortest, book prompts the longest: prompt gate"
SIZES = {"train_pairs": 200, "eval_pairs": 80}
MARGIN = 8.0  # words between the shortest and the longest of the samples
GROUPS = {"movie": ("movies-concise", False), "book": ("books-detailed", True)}  # domain: (group, longer?)
PREFERENCES = {
    "movies-concise": "for a movie prompt, the shortest sampled review",
    "books-detailed": "for a book prompt, the longest sampled review",
}

_DESCRIPTION = """\
# cross-domain

Each prompt asks for a short review of an invented movie or book; the two completions were **sampled
from SmolLM2-135M-Instruct**: the shortest and the longest of four samples (at least {margin:.0f} words
apart). The preferred one depends on the domain:

- **movies-concise** (movie prompts, half of the pairs): the shortest review is chosen;
- **books-detailed** (book prompts, the other half): the longest review is chosen.

**Why one policy struggles.** The two domains pull the same axis (length) in opposite directions. A
policy that ignores the prompt can please only one domain (about half of the pairs); a single policy
that reads the prompt can in principle learn "short for movies, long for books" (the ceiling below is
1 because no two rows share a completion), but it has to fold both styles into one set of weights. A
mixture with a prompt gate (MoE-DPO) gives each domain its own expert and learns to route by prompt;
routing accuracy tells whether it did.

Samples: `{command}`.

## Numbers for this build

{numbers}
"""


def _pairs(items, group_of) -> list[Pair]:
    out = []
    for item in items:
        group, longer = group_of[item.domain]
        chosen, rejected = extreme_pair(item, "length", MARGIN, higher=longer)
        out.append(Pair(item.request, chosen, rejected, group, item.domain))
    return out


def build(seed: int, sizes: dict[str, int], fmt: str, samples: str | None = None) -> TaskData:
    """Build the task (``sizes``: :data:`SIZES` with overrides; ``samples``: a ``scored.jsonl``, None =
    the shipped one)."""
    check_sizes(sizes, multiples={"train_pairs": 2, "eval_pairs": 2}, minimums={"train_pairs": 2})
    loaded = load_samples(samples)
    splits: dict[str, list[Pair]] = {"train": [], "eval": []}
    for domain in GROUPS:
        usable = [p for p in loaded if p.domain == domain and extreme_pair(p, "length", MARGIN) is not None]
        rng = random.Random(f"{NAME}:{seed}:{domain}")
        counts = {split: sizes[f"{split}_pairs"] // 2 for split in splits}
        chosen = split_prompts(
            rng, usable, counts, f"{domain} prompts have a length gap >= {MARGIN:.0f} words"
        )
        for split, items in chosen.items():
            splits[split] += _pairs(items, GROUPS)
    for split, pairs in splits.items():
        random.Random(f"{NAME}:{seed}:order:{split}").shuffle(pairs)
    task = TaskData(
        name=NAME,
        train=[to_row(p, fmt) for p in splits["train"]],
        eval=[to_row(p, fmt) for p in splits["eval"]],
        new_users=[],
        description="",
        groups=[group for group, _ in GROUPS.values()],
        preferences=dict(PREFERENCES),
        recommended={
            "num_experts": 2,
            "gate": "prompt",
            "beta": 0.1,
            "notes": "K=2, one expert per domain; the prompt gate reads the frozen reference's prompt "
            "features. Baseline: num_experts=1 (plain DPO), which has to fit both length preferences "
            "in one policy.",
        },
        seed=seed,
        sizes=dict(sizes),
        format=fmt,
    )
    command = SAMPLES_COMMAND if samples is None else f"scored samples from {samples}"
    task.description = _DESCRIPTION.format(margin=MARGIN, command=command, numbers=numbers_markdown(task))
    return task
