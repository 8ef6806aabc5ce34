"""``personas``: two hidden groups of users rank the same sampled reviews oppositely (MoE-DPO, user gate).

Built the paper's way from real samples (:mod:`mixdpo.tasks.sampled`): for each review prompt, SmolLM2's
most positive and most negative completion by VADER sentiment (compound gap >= :data:`MARGIN`) form an
item. Each item is labelled by three users: two **fans** choose the positive completion, one **critic**
the negative one. Unlike ``reviews-users`` the two texts differ in everything a sampled text differs in
(length, content, fluency), and the sentiment is what a reward model measured, not a word list.

Defaults: 12 training users (8 fans, 4 critics; ids do not reveal the group), 300 training pairs (100
items), 120 evaluation pairs (the same users, prompts training never saw) and 72 pairs of 6 new users
(4 fans, 2 critics) on prompts of their own, for refitting the gate to unseen users.

Single-policy ceiling: every item appears with both preferences, so at most 2 of its 3 rows can be
right: 2/3 overall, by following the fans, with 0% on critics. A user gate can reach 100%.
"""

from __future__ import annotations

import random

from mixdpo.tasks.base import (
    TaskData,
    check_fan_critic_sizes,
    hidden_group_users,
    label_by_users,
    numbers_markdown,
    to_row,
)
from mixdpo.tasks.sampled import SAMPLES_COMMAND, extreme_pair, load_samples, split_prompts

NAME = "personas"
SUMMARY = (
    "sampled SmolLM2 reviews; hidden fans (2/3) prefer the positive one, critics the negative: user gate"
)
SIZES = {
    "train_pairs": 300,
    "eval_pairs": 120,
    "new_user_pairs": 72,
    "fans": 8,
    "critics": 4,
    "new_fans": 4,
    "new_critics": 2,
}
FANS_PER_ITEM, CRITICS_PER_ITEM = 2, 1
MARGIN = 0.5  # VADER compound in [-1, 1]: a clearly positive against a clearly negative completion
PREFERENCES = {
    "fans": "the most positive sampled review (VADER sentiment)",
    "critics": "the most negative sampled review",
}

_DESCRIPTION = """\
# personas

Each prompt asks for a short review of an invented movie or book; the two completions were **sampled
from SmolLM2-135M-Instruct** and scored with VADER sentiment: the most positive and the most negative
of four samples (compound gap >= {margin}). Every such item is labelled by three users from two hidden
groups:

- **fans** (2 of every 3 labels): prefer the positive completion;
- **critics** (1 of every 3 labels): prefer the negative completion.

User ids do not reveal the group; the `group` column is for evaluation only.

**Why one policy cannot satisfy both groups.** Every item appears with both preferences (identical
prompt and completions, opposite chosen/rejected), and a policy reads the prompt, not the user: the best
single policy follows the fans, 2/3 overall and **0% on critics**. A mixture with a user gate can reach
100%. The texts differ in more than sentiment (length, topic, fluency), so the experts must find the
axis the groups disagree on among everything else that varies.

**Splits.** `train` and `eval` have the same users and no prompt in common; `new_users` holds users that
training never saw, on prompts of their own.

Samples: `{command}`.

## Numbers for this build

{numbers}
"""


def build(seed: int, sizes: dict[str, int], fmt: str, samples: str | None = None) -> TaskData:
    """Build the task (``sizes``: :data:`SIZES` with overrides; ``samples``: a ``scored.jsonl``, None =
    the shipped one)."""
    per_item = FANS_PER_ITEM + CRITICS_PER_ITEM
    check_fan_critic_sizes(sizes, FANS_PER_ITEM, CRITICS_PER_ITEM)

    def rng(part: str) -> random.Random:
        return random.Random(f"{NAME}:{seed}:{part}")

    usable = [p for p in load_samples(samples) if extreme_pair(p, "sentiment", MARGIN) is not None]
    counts = {split: sizes[f"{split}_pairs"] // per_item for split in ("train", "eval", "new_user")}
    prompts = split_prompts(rng("prompts"), usable, counts, f"prompts have a sentiment gap >= {MARGIN}")
    fans, critics = hidden_group_users(rng("users"), 0, sizes["fans"], sizes["critics"])
    new_fans, new_critics = hidden_group_users(
        rng("new_users"), sizes["fans"] + sizes["critics"], sizes["new_fans"], sizes["new_critics"]
    )
    users = {
        "train": {"fans": (fans, FANS_PER_ITEM), "critics": (critics, CRITICS_PER_ITEM)},
        "eval": {"fans": (fans, FANS_PER_ITEM), "critics": (critics, CRITICS_PER_ITEM)},
        "new_user": {"fans": (new_fans, FANS_PER_ITEM), "critics": (new_critics, CRITICS_PER_ITEM)},
    }
    splits = {}
    for split, items in prompts.items():
        labelled = [(p.request, *extreme_pair(p, "sentiment", MARGIN), p.domain) for p in items]
        pairs = label_by_users(rng(split), labelled, users[split])
        splits["new_users" if split == "new_user" else split] = [to_row(pair, fmt) for pair in pairs]
    task = TaskData(
        name=NAME,
        **splits,
        description="",
        groups=["fans", "critics"],
        preferences=dict(PREFERENCES),
        recommended={
            "num_experts": 2,
            "gate": "user",
            "beta": 0.1,
            "notes": "K=2 matches the two hidden groups; the user gate learns each user's expert from their "
            "~25 training pairs. Baseline: num_experts=1 (plain DPO), at most the ceiling (2/3, 0% on "
            "critics).",
        },
        seed=seed,
        sizes=dict(sizes),
        format=fmt,
    )
    command = SAMPLES_COMMAND if samples is None else f"scored samples from {samples}"
    task.description = _DESCRIPTION.format(margin=MARGIN, command=command, numbers=numbers_markdown(task))
    return task
