"""``reviews-users``: fans want praise, critics want criticism (MoE-DPO with a user gate; the demo task).

Every prompt asks for a one-sentence review of an invented movie or book. Each *item* is a prompt and
two reviews of the same title drawn from one draft (:mod:`mixdpo.tasks.sentences`): an enthusiastic one
and a critical one, with the same sentence frame and aspects, differing only in the sentiment words.
Each item is labelled by three users: two **fans** (who choose the enthusiastic review) and one
**critic** (who chooses the critical review). So the same prompt and completions appear in the data
with both preferences, and only the user tells them apart.

Defaults: 12 training users (8 fans, 4 critics; user ids do not reveal the group), 240 training pairs
(80 items, 20 pairs per user), 120 evaluation pairs (the same users, titles never seen in training), and
72 pairs of 6 new users (4 fans, 2 critics, 12 pairs each, on the evaluation titles) for refitting the
gate to users training never saw. Group shares: fans 2/3, critics 1/3 of the pairs in every split.

Single-policy ceiling: a policy reads the prompt, not the user, so it ranks the two reviews of an item
the same way for everyone: at most 2 of an item's 3 rows are right. Best overall: 2/3, by following
the fans, which gets the critics 0%. A mixture with a user gate can reach 100%: one expert per group,
the gate routing each user to their group's expert.
"""

from __future__ import annotations

import random

from mixdpo.tasks.base import (
    Pair,
    TaskData,
    TitleCycle,
    balanced_domains,
    check_fan_critic_sizes,
    hidden_group_users,
    label_by_users,
    numbers_markdown,
    split_titles,
    to_row,
)
from mixdpo.tasks.sentences import draw_request, draw_review
from mixdpo.tasks.words import PROMPTS

NAME = "reviews-users"
SUMMARY = "one-sentence reviews; hidden fans (2/3) prefer praise, critics (1/3) criticism: user gate"
SIZES = {
    "train_pairs": 240,
    "eval_pairs": 120,
    "new_user_pairs": 72,
    "fans": 8,
    "critics": 4,
    "new_fans": 4,
    "new_critics": 2,
}
FANS_PER_ITEM, CRITICS_PER_ITEM = 2, 1
PREFERENCES = {
    "fans": "the enthusiastic (positive) review",
    "critics": "the critical (negative) review",
}

_DESCRIPTION = """\
# reviews-users

Each prompt asks for a one-sentence review of an invented movie or book. The two completions are two
reviews of that title built from one draft: the same sentence frame, aspects and length, one
**enthusiastic** and one **critical** (they differ only in the sentiment words). Every such item is
labelled by three users, drawn from two hidden groups:

- **fans** (2 of every 3 labels): prefer the enthusiastic review;
- **critics** (1 of every 3 labels): prefer the critical review.

User ids do not reveal the group; the `group` column is for evaluation only.

**Why one policy cannot satisfy both groups.** A policy reads the prompt, not the user, and every item
appears with both preferences (identical prompt and completions, opposite chosen/rejected). It ranks
the two reviews one way for everyone, so at most 2 of an item's 3 rows can be right: the best single
policy follows the fans and gets 2/3 overall, 100% on fans and **0% on critics**. Plain DPO on these
pairs is pulled towards exactly that. A mixture of two experts with a gate that reads the user id
(MoE-DPO) can get 100%: one enthusiastic expert, one critical expert, each user routed to theirs.

**Splits.** `train` and `eval` have the same users; `eval` uses titles that `train` never shows.
`new_users` holds users that training never saw (same group ratio, evaluation titles): refit only the
gate on part of their pairs, with the experts frozen, and score the rest.

## Numbers for this build

{numbers}
"""


def _items(rng: random.Random, n_items: int, titles: dict[str, list[str]]) -> list[tuple[str, str, str, str]]:
    """``n_items`` distinct ``(request, enthusiastic, critical, domain)`` items on ``titles``."""
    cycle, seen, items = TitleCycle(rng, titles), set(), []
    for domain in balanced_domains(rng, n_items):
        for _ in range(100):  # a repeat of an earlier item is rare; draw again
            title = cycle.next(domain)
            request = draw_request(rng, domain, title, PROMPTS)
            draft = draw_review(rng, domain, title=title)
            item = (request, draft.render("positive"), draft.render("negative"), domain)
            if item[:3] not in seen:
                break
        seen.add(item[:3])
        items.append(item)
    return items


def _labelled(
    rng: random.Random, n_pairs: int, titles: dict[str, list[str]], fans: list[str], critics: list[str]
) -> list[Pair]:
    n_items = n_pairs // (FANS_PER_ITEM + CRITICS_PER_ITEM)
    items = _items(rng, n_items, titles)
    return label_by_users(rng, items, {"fans": (fans, FANS_PER_ITEM), "critics": (critics, CRITICS_PER_ITEM)})


def build(seed: int, sizes: dict[str, int], fmt: str) -> TaskData:
    """Build the task (``sizes``: :data:`SIZES` with overrides, already checked for names and types)."""
    check_fan_critic_sizes(sizes, FANS_PER_ITEM, CRITICS_PER_ITEM)

    def rng(part: str) -> random.Random:
        return random.Random(f"{NAME}:{seed}:{part}")

    titles = split_titles(rng("titles"))
    fans, critics = hidden_group_users(rng("users"), 0, sizes["fans"], sizes["critics"])
    new_fans, new_critics = hidden_group_users(
        rng("new_users"), sizes["fans"] + sizes["critics"], sizes["new_fans"], sizes["new_critics"]
    )
    splits = {
        "train": _labelled(rng("train"), sizes["train_pairs"], titles["train"], fans, critics),
        "eval": _labelled(rng("eval"), sizes["eval_pairs"], titles["eval"], fans, critics),
        "new_users": _labelled(
            rng("new_user_pairs"), sizes["new_user_pairs"], titles["eval"], new_fans, new_critics
        ),
    }
    task = TaskData(
        name=NAME,
        **{split: [to_row(p, fmt) for p in pairs] for split, pairs in splits.items()},
        description="",
        groups=["fans", "critics"],
        preferences=dict(PREFERENCES),
        recommended={
            "num_experts": 2,
            "gate": "user",
            "beta": 0.1,
            "notes": "K=2 matches the two hidden groups. The user gate learns which expert each user "
            "follows from their ~20 training pairs; for new users refit only the gate on part of "
            "new_users (experts frozen) and score the rest. Baseline: num_experts=1 (plain DPO), which "
            "can reach at most the ceiling (2/3, 0% on critics).",
        },
        seed=seed,
        sizes=dict(sizes),
        format=fmt,
    )
    task.description = _DESCRIPTION.format(numbers=numbers_markdown(task))
    return task
