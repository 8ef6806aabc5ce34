"""What every built-in task shares: the :class:`TaskData` it returns, the row formats, and helpers.

A task builder first makes :class:`Pair` objects (plain text, one labelled pair each) and then turns them
into TRL rows with :func:`to_row`, in one of two formats:

- ``"chat"`` (conversational, the default): ``prompt`` = ``[{"role": "user", "content": request}]``,
  ``chosen`` / ``rejected`` = ``[{"role": "assistant", "content": review}]``; for instruct models.
- ``"text"``: ``prompt`` = ``"User: <request>\\nAssistant:"``, completions = ``" <review>"``; for
  tokenizers without a chat template.

Every row also has ``group`` (the hidden label, evaluation only), ``domain`` ("movie"/"book") and, in
tasks with users, ``user_id``.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mixdpo.errors import ConfigError
from mixdpo.tasks.ceiling import SEES, Ceiling, group_shares, single_policy_ceiling
from mixdpo.tasks.words import TITLES

FORMATS = ("chat", "text")
SPLITS = ("train", "eval", "new_users")


@dataclass(frozen=True)
class Pair:
    """One labelled preference pair before formatting (``request`` is the user's message)."""

    request: str
    chosen: str
    rejected: str
    group: str
    domain: str
    user_id: str | None = None


def to_row(pair: Pair, fmt: str = "chat") -> dict[str, Any]:
    """The TRL row of ``pair`` in format ``fmt`` ("chat" or "text"; see the module docstring)."""
    if fmt == "chat":
        row: dict[str, Any] = {
            "prompt": [{"role": "user", "content": pair.request}],
            "chosen": [{"role": "assistant", "content": pair.chosen}],
            "rejected": [{"role": "assistant", "content": pair.rejected}],
        }
    elif fmt == "text":
        row = {"prompt": f"User: {pair.request}\nAssistant:", "chosen": f" {pair.chosen}"}
        row["rejected"] = f" {pair.rejected}"
    else:
        raise ConfigError("format", f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if pair.user_id is not None:
        row["user_id"] = pair.user_id
    row["group"] = pair.group
    row["domain"] = pair.domain
    return row


@dataclass
class TaskData:
    """A built task: its splits as TRL rows and what a reader needs to know about them.

    Attributes:
        name: the task's name (see :func:`mixdpo.tasks.list_tasks`).
        train, eval: rows for training and for evaluation (same users where there are users, titles
            that training never saw).
        new_users: rows of users that training never saw (for refitting the gate); may be empty.
        description: markdown: what each group prefers, the shares, and why one policy cannot please all.
        groups: the hidden group labels, in a fixed order.
        preferences: group -> what that group prefers, in a few words.
        recommended: suggested training options (``num_experts``, ``gate``, ...; names of
            ``MixDPOConfig``) and ``notes``.
        seed, sizes, format: what the task was built with (rebuilding with them gives the same rows).
    """

    name: str
    train: list[dict[str, Any]]
    eval: list[dict[str, Any]]
    new_users: list[dict[str, Any]]
    description: str
    groups: list[str]
    preferences: dict[str, str]
    recommended: dict[str, Any]
    seed: int = 0
    sizes: dict[str, int] = field(default_factory=dict)
    format: str = "chat"

    def splits(self) -> dict[str, list[dict[str, Any]]]:
        """``{"train": ..., "eval": ..., "new_users": ...}``."""
        return {"train": self.train, "eval": self.eval, "new_users": self.new_users}

    def rows(self, split: str) -> list[dict[str, Any]]:
        if split not in SPLITS:
            raise ConfigError("split", f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        return self.splits()[split]

    def ceiling(self, split: str = "eval", *, sees: str = "prompt") -> Ceiling:
        """:func:`~mixdpo.tasks.ceiling.single_policy_ceiling` of one split."""
        return single_policy_ceiling(self.rows(split), sees=sees)

    def shares(self, split: str = "train") -> dict[str, float]:
        """Fraction of the split's rows per group."""
        return group_shares(self.rows(split))

    def summary(self) -> dict[str, Any]:
        """Sizes, shares and ceilings of every non-empty split (what ``task.json`` holds)."""
        return {
            "name": self.name,
            "seed": self.seed,
            "format": self.format,
            "sizes": dict(self.sizes),
            "groups": list(self.groups),
            "preferences": dict(self.preferences),
            "recommended": dict(self.recommended),
            "splits": {
                split: {
                    "pairs": len(rows),
                    "shares": group_shares(rows),
                    "ceiling": {sees: single_policy_ceiling(rows, sees=sees).to_dict() for sees in SEES},
                }
                for split, rows in self.splits().items()
                if rows
            },
        }


def numbers_markdown(task: TaskData) -> str:
    """A markdown table of each split's size, group shares and single-policy ceilings."""
    lines = [
        "| split | pairs | group shares | ceiling (reads the prompt) | that policy, per group "
        "| ceiling (ignores the prompt) |",
        "|---|---|---|---|---|---|",
    ]
    for split, rows in task.splits().items():
        if not rows:
            continue
        shares = ", ".join(f"{g} {s:.1%}" for g, s in group_shares(rows).items())
        prompt, blind = (single_policy_ceiling(rows, sees=s) for s in SEES)
        per_group = ", ".join(f"{g} {a:.0%}" for g, a in prompt.per_group.items())
        cells = (split, len(rows), shares, f"{prompt.accuracy:.1%}", per_group, f"{blind.accuracy:.1%}")
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    lines.append(
        "\n*Ceiling*: the best accuracy any single policy can reach on the split (counted by "
        "`mixdpo.tasks.single_policy_ceiling`); *that policy, per group*: its accuracy on each group's pairs "
        "(where an item's two preferences tie, it follows the larger group)."
    )
    return "\n".join(lines)


def split_titles(rng: random.Random, eval_fraction: float = 1 / 3) -> dict[str, dict[str, list[str]]]:
    """Shuffle each domain's titles and split them: ``{"train": {domain: [...]}, "eval": {...}}``."""
    out: dict[str, dict[str, list[str]]] = {"train": {}, "eval": {}}
    for domain, titles in TITLES.items():
        shuffled = list(titles)
        rng.shuffle(shuffled)
        n_eval = round(len(shuffled) * eval_fraction)
        out["eval"][domain], out["train"][domain] = shuffled[:n_eval], shuffled[n_eval:]
    return out


def balanced_domains(rng: random.Random, n: int) -> list[str]:
    """``n`` domains, half "movie" and half "book" (the odd one random), in random order."""
    domains = ["movie", "book"] * (n // 2) + ([rng.choice(("movie", "book"))] if n % 2 else [])
    rng.shuffle(domains)
    return domains


class TitleCycle:
    """Hands out each domain's titles in a shuffled round-robin, so titles are used evenly."""

    def __init__(self, rng: random.Random, titles: dict[str, list[str]]):
        self._rng, self._titles = rng, titles
        self._queues: dict[str, list[str]] = {domain: [] for domain in titles}

    def next(self, domain: str) -> str:
        queue: list[str] = self._queues[domain]
        if not queue:
            queue.extend(self._titles[domain])
            self._rng.shuffle(queue)
        return queue.pop()


def assign_users(rng: random.Random, users: list[str], n_items: int, per_item: int) -> list[list[str]]:
    """For each of ``n_items`` items, ``per_item`` distinct users; every user gets (nearly) equal counts."""
    if per_item > len(users):
        raise ValueError(f"cannot pick {per_item} distinct users out of {len(users)}")
    load: Counter[str] = Counter({u: 0 for u in users})
    out = []
    for _ in range(n_items):
        order = sorted(users, key=lambda u: (load[u], rng.random()))
        picked = order[:per_item]
        load.update(picked)
        out.append(picked)
    return out


def check_sizes(sizes: dict[str, int], multiples: dict[str, int], minimums: dict[str, int]) -> None:
    """Raise ConfigError unless each ``sizes[k]`` is a multiple of ``multiples[k]`` and >= ``minimums[k]``."""
    for key, minimum in minimums.items():
        if sizes[key] < minimum:
            raise ConfigError(key, f"must be at least {minimum}, got {sizes[key]}")
    for key, multiple in multiples.items():
        if sizes[key] % multiple:
            raise ConfigError(
                key,
                f"must be a multiple of {multiple} (each item is labelled {multiple} times); "
                f"got {sizes[key]}",
            )


def label_by_users(
    rng: random.Random,
    items: list[tuple[str, str, str, str]],
    groups: dict[str, tuple[list[str], int]],
) -> list[Pair]:
    """Label every item ``(request, first, second, domain)`` by users of hidden groups, in random order.

    ``groups`` maps a group to its users and how many of them label each item; the first group prefers
    ``first``, every other group ``second``. Users are spread evenly (:func:`assign_users`).
    """
    user_sets = {g: assign_users(rng, users, len(items), per_item) for g, (users, per_item) in groups.items()}
    leader = next(iter(groups))
    pairs = []
    for i, (request, first, second, domain) in enumerate(items):
        for group, sets in user_sets.items():
            chosen, rejected = (first, second) if group == leader else (second, first)
            pairs += [Pair(request, chosen, rejected, group, domain, user) for user in sets[i]]
    rng.shuffle(pairs)
    return pairs


def hidden_group_users(rng: random.Random, first: int, n_a: int, n_b: int) -> tuple[list[str], list[str]]:
    """User ids ``user_<first>``... split into two groups of ``n_a`` and ``n_b`` at random, so that ids do
    not reveal groups."""
    ids = [f"user_{i:02d}" for i in range(first, first + n_a + n_b)]
    rng.shuffle(ids)
    return sorted(ids[:n_a]), sorted(ids[n_a:])


def check_fan_critic_sizes(sizes: dict[str, int], fans_per_item: int, critics_per_item: int) -> None:
    """The sizes of a task whose items are each labelled by ``fans_per_item`` fans and ``critics_per_item``
    critics: pair counts in whole items, and enough (new) users of each group to label one item."""
    per_item = fans_per_item + critics_per_item
    check_sizes(
        sizes,
        multiples={"train_pairs": per_item, "eval_pairs": per_item, "new_user_pairs": per_item},
        minimums={"train_pairs": per_item, "fans": fans_per_item, "critics": critics_per_item},
    )
    if sizes["new_user_pairs"]:
        check_sizes(sizes, {}, {"new_fans": fans_per_item, "new_critics": critics_per_item})
