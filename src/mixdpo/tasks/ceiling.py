"""The best preference accuracy any single policy can reach on rows where groups disagree.

A policy pi (with its reference) ranks the two completions of a pair by its implicit reward
r(x, y) = beta log pi(y|x) / pi_ref(y|x), and the pair counts as right when the chosen one ranks higher.
A single policy reads the prompt x but not the user or the group, so all rows that share an *item*
(the same prompt and the same two completions) get the same ranking, whoever labelled them. If an
item appears a times as "A over B" and b times as "B over A", at most max(a, b) of its rows can be
right. Summing over items::

    ceiling = sum_items max(a_item, b_item) / number of rows

No single policy can do better on these rows (an upper bound that follows from counting alone). It is
reached whenever the majority rankings under each prompt contain no cycle (A > B, B > C, C > A), which
:attr:`Ceiling.tight` checks; in the built-in tasks every prompt has a single pair of completions.

``sees="nothing"`` is the same count for a policy whose ranking ignores the prompt (items are then the
pairs of completions alone): the ceiling of one fixed taste, e.g. "always prefer the short review".

A mixture whose gate reads only what a single policy reads (Mix-DPO's global weights, or a prompt gate)
ranks every item one way too, so its *mixture accuracy* has the same ceiling; what the mixture adds
there is experts that each match one group. A user gate sees more than the prompt and can exceed it.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SEES = ("prompt", "nothing")


@dataclass(frozen=True)
class Ceiling:
    """What the best single policy reaches on some rows (see the module docstring).

    Attributes:
        accuracy: the ceiling, sum over items of max(a, b) / rows (1.0 when nothing conflicts).
        per_group: accuracy on each group's rows of the single policy that reaches ``accuracy``; where an
            item is tied (a = b) it follows the group with the most rows overall (then by name).
        num_pairs: rows counted.
        num_items: distinct items (prompt and unordered pair of completions; without the prompt when
            ``sees="nothing"``).
        num_conflicting: rows whose item also appears with the opposite preference.
        tight: whether some policy reaches ``accuracy`` (no cycle among majority rankings per prompt).
        sees: "prompt" or "nothing".
    """

    accuracy: float
    per_group: dict[str, float] = field(default_factory=dict)
    num_pairs: int = 0
    num_items: int = 0
    num_conflicting: int = 0
    tight: bool = True
    sees: str = "prompt"

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "per_group": dict(self.per_group),
            "num_pairs": self.num_pairs,
            "num_items": self.num_items,
            "num_conflicting": self.num_conflicting,
            "tight": self.tight,
            "sees": self.sees,
        }


def _canonical(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)


def group_shares(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Fraction of ``rows`` per ``group`` label (rows without one count as group ``"?"``), sorted by name."""
    counts = Counter(str(row.get("group", "?")) for row in rows)
    return {group: counts[group] / len(rows) for group in sorted(counts)} if rows else {}


def single_policy_ceiling(rows: Sequence[Mapping[str, Any]], *, sees: str = "prompt") -> Ceiling:
    """The best accuracy a single policy can reach on ``rows`` (TRL rows with an optional ``group``).

    Args:
        rows: preference rows with ``prompt``, ``chosen``, ``rejected`` (text or messages) and ``group``.
        sees: "prompt" (a policy conditioned on the prompt: the usual case) or "nothing" (a policy that
            ranks completions the same way whatever the prompt).

    Returns:
        The :class:`Ceiling`. Empty ``rows`` give accuracy 1.0 with no pairs.
    """
    if sees not in SEES:
        raise ValueError(f"sees must be one of {SEES}, got {sees!r}")
    if not rows:
        return Ceiling(1.0, sees=sees)
    # item key -> orientation (True: the lexicographically first completion won) -> group -> count
    counts: dict[tuple[str, str, str], dict[bool, Counter[str]]] = defaultdict(
        lambda: {True: Counter(), False: Counter()}
    )
    for row in rows:
        chosen, rejected = _canonical(row["chosen"]), _canonical(row["rejected"])
        prompt = _canonical(row.get("prompt") or "") if sees == "prompt" else ""
        first, second = sorted((chosen, rejected))
        counts[(prompt, first, second)][chosen == first][str(row.get("group", "?"))] += 1
    shares = group_shares(rows)
    priority = sorted(shares, key=lambda g: (-shares[g], g))  # tie-break: the largest group wins

    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    conflicting = 0
    winners: dict[tuple[str, str, str], bool] = {}
    for key, by_orientation in counts.items():

        def rank(orientation: bool, by_orientation=by_orientation) -> tuple[int, ...]:
            c = by_orientation[orientation]
            return (sum(c.values()), *(c[g] for g in priority))

        best = max((True, False), key=rank)
        winners[key] = best
        for orientation, by_group in by_orientation.items():
            total.update(by_group)
            if orientation == best:
                right.update(by_group)
        if all(by_orientation[o] for o in (True, False)):
            conflicting += sum(sum(c.values()) for c in by_orientation.values())
    return Ceiling(
        accuracy=sum(right.values()) / len(rows),
        per_group={g: right[g] / total[g] for g in sorted(total)},
        num_pairs=len(rows),
        num_items=len(counts),
        num_conflicting=conflicting,
        tight=_acyclic(winners),
        sees=sees,
    )


def _acyclic(winners: Mapping[tuple[str, str, str], bool]) -> bool:
    """Whether, under every prompt, the majority rankings "winner > loser" form no cycle."""
    edges: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for (prompt, first, second), first_won in winners.items():
        winner, loser = (first, second) if first_won else (second, first)
        edges[prompt][winner].add(loser)
    for graph in edges.values():
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        for start in list(graph):
            if start in state:
                continue
            stack = [(start, iter(graph[start]))]
            state[start] = 1
            while stack:
                node, children = stack[-1]
                child = next(children, None)
                if child is None:
                    state[node] = 2
                    stack.pop()
                elif state.get(child) == 1:
                    return False
                elif child not in state:
                    state[child] = 1
                    stack.append((child, iter(graph.get(child, ()))))
    return True
