"""``reviews-mixed``: pairs pooled from three reward axes that sometimes conflict (Mix-DPO, global weights).

Every review has three binary attributes: sentiment (positive / negative), length (short / long: the
long review appends an elaboration clause) and register (formal opener, or casual opener and "!").
Three hidden *axes* (the groups) each care about one attribute:

- ``positive`` prefers the positive review;
- ``concise`` prefers the short review;
- ``formal`` prefers the formal review.

Each *item* is a prompt and two reviews from one draft that differ in exactly two attributes (all else
equal), and it is labelled once by each of the two axes that care about them. In an **aligned** item
one review is better on both attributes and both labels agree; in a **conflicting** item each review
wins on one attribute and the two labels are opposite. Item kinds: sentiment+length 40%,
sentiment+register 40%, length+register 20%, so the group shares are positive 40%, concise 30%,
formal 30%; 2/3 of the items of each kind conflict. There are no users (``new_users`` is empty).

Defaults: 240 training pairs (120 items), 120 evaluation pairs (60 items, titles never seen in training).

Single-policy ceiling: a conflicting item appears twice with opposite preferences (same prompt, same
completions), so any single policy gets one of its two rows right; aligned items can be all right. With
2/3 of the items conflicting the ceiling is 1/3 + 2/3 * 1/2 = 2/3. A Mix-DPO mixture (global weights)
ranks every item one way too, so its *mixture accuracy* has the same ceiling; the mixture's point is
experts that each follow one axis (per-group expert accuracy up to 100%) and weights near the shares.
"""

from __future__ import annotations

import random
from typing import Any

from mixdpo.tasks.base import (
    Pair,
    TaskData,
    TitleCycle,
    balanced_domains,
    check_sizes,
    numbers_markdown,
    split_titles,
    to_row,
)
from mixdpo.tasks.sentences import draw_request, draw_review
from mixdpo.tasks.words import PROMPTS

NAME = "reviews-mixed"
SUMMARY = "reviews; pooled axes positive (40%), concise (30%), formal (30%) that conflict on 2/3: Mix-DPO"
SIZES = {"train_pairs": 240, "eval_pairs": 120}
# axis -> (attribute, the value it prefers, the value it does not)
AXES: dict[str, tuple[str, Any, Any]] = {
    "positive": ("sentiment", "positive", "negative"),
    "concise": ("long", False, True),
    "formal": ("register", "formal", "casual"),
}
KINDS = {("positive", "concise"): 0.4, ("positive", "formal"): 0.4, ("concise", "formal"): 0.2}
CONFLICT_FRACTION = 2 / 3
PREFERENCES = {
    "positive": "the positive review",
    "concise": "the short review (no elaboration clause)",
    "formal": "the formal review (formal opener, no '!')",
}

_DESCRIPTION = """\
# reviews-mixed

Each prompt asks for a one-sentence review of an invented movie or book. Reviews vary in three
attributes: **sentiment** (positive / negative), **length** (short, or long with an elaboration clause)
and **register** (a formal opener such as "On balance," or a casual one such as "Honestly," with "!").
The pairs are pooled from three hidden reward axes (the groups), each caring about one attribute:

- **positive** (40% of the pairs): prefers the positive review;
- **concise** (30%): prefers the short review;
- **formal** (30%): prefers the formal review.

Each item's two reviews come from one draft and differ in exactly two attributes; the item is labelled
once by each of the two axes that care. In 1/3 of the items one review wins on both attributes (the
labels agree); in 2/3 each review wins on one (the labels are opposite). Kinds: sentiment+length 40%,
sentiment+register 40%, length+register 20%. There are no users.

**Why one policy cannot satisfy all axes.** A conflicting item appears twice with identical prompt and
completions and opposite preferences, so any single policy gets exactly one of its two rows right:
the ceiling is 1/3 + 2/3 x 1/2 = 2/3. A Mix-DPO mixture with global weights ranks each item one way as
well, so its mixture accuracy has the same ceiling; what it can do is learn one expert per axis (each
right on its own axis's pairs) with weights near the shares. Score it by per-group expert accuracy,
the recovered weights and how well responsibilities recover the axes (ARI/NMI), not mixture accuracy.

## Numbers for this build

{numbers}
"""


def _allocate(n: int, weights: dict, rng: random.Random) -> list:
    """``n`` keys in proportion to ``weights`` (largest remainder), in random order."""
    exact = {key: n * w for key, w in weights.items()}
    counts = {key: int(x) for key, x in exact.items()}
    for key in sorted(exact, key=lambda k: counts[k] - exact[k])[: n - sum(counts.values())]:
        counts[key] += 1
    keys = [key for key, c in counts.items() for _ in range(c)]
    rng.shuffle(keys)
    return keys


def _pairs(rng: random.Random, n_pairs: int, titles: dict[str, list[str]]) -> list[Pair]:
    kinds = _allocate(n_pairs // 2, KINDS, rng)
    conflict: dict[tuple[str, str], list[bool]] = {}
    for kind in KINDS:  # exactly round(CONFLICT_FRACTION * count) conflicting items of each kind
        n = kinds.count(kind)
        conflict[kind] = [i < round(n * CONFLICT_FRACTION) for i in range(n)]
        rng.shuffle(conflict[kind])
    cycle, seen, pairs = TitleCycle(rng, titles), set(), []
    for kind, domain in zip(kinds, balanced_domains(rng, len(kinds)), strict=True):
        conflicting = conflict[kind].pop()
        first, second = (AXES[axis] for axis in kind)
        for _ in range(100):  # a repeat of an earlier item is rare; draw again
            title = cycle.next(domain)
            request, draft = draw_request(rng, domain, title, PROMPTS), draw_review(rng, domain, title=title)
            # review a wins on the first axis; on the second it wins (aligned) or loses (conflicting)
            a: dict[str, Any] = {
                "sentiment": rng.choice(("positive", "negative")),
                "long": rng.random() < 0.5,
            }
            a["register"] = rng.choice(("formal", "casual"))
            a[first[0]] = first[1]
            a[second[0]] = second[2] if conflicting else second[1]
            b = {**a, first[0]: first[2], second[0]: second[1] if conflicting else second[2]}
            text_a, text_b = draft.render(**a), draft.render(**b)
            if (request, text_a, text_b) not in seen:
                break
        seen.add((request, text_a, text_b))
        for axis in kind:
            attribute, preferred, _ = AXES[axis]
            a_wins = a[attribute] == preferred
            chosen, rejected = (text_a, text_b) if a_wins else (text_b, text_a)
            pairs.append(Pair(request, chosen, rejected, axis, domain))
    rng.shuffle(pairs)
    return pairs


def build(seed: int, sizes: dict[str, int], fmt: str) -> TaskData:
    """Build the task (``sizes``: :data:`SIZES` with overrides, already checked for names and types)."""
    check_sizes(sizes, multiples={"train_pairs": 2, "eval_pairs": 2}, minimums={"train_pairs": 2})

    def rng(part: str) -> random.Random:
        return random.Random(f"{NAME}:{seed}:{part}")

    titles = split_titles(rng("titles"))
    task = TaskData(
        name=NAME,
        train=[to_row(p, fmt) for p in _pairs(rng("train"), sizes["train_pairs"], titles["train"])],
        eval=[to_row(p, fmt) for p in _pairs(rng("eval"), sizes["eval_pairs"], titles["eval"])],
        new_users=[],
        description="",
        groups=list(AXES),
        preferences=dict(PREFERENCES),
        recommended={
            "num_experts": 3,
            "gate": "global",
            "global_gate_mode": "closed_form",
            "beta": 0.1,
            "notes": "Mix-DPO: K=3 global weights, one expert per axis; the weights should approach the "
            "shares (0.4, 0.3, 0.3). Mixture accuracy is capped by the single-policy ceiling (2/3); "
            "judge by per-group expert accuracy, the weights, and ARI/NMI of responsibilities vs group.",
        },
        seed=seed,
        sizes=dict(sizes),
        format=fmt,
    )
    task.description = _DESCRIPTION.format(numbers=numbers_markdown(task))
    return task
