"""``reviews-domains``: concise reviews for movies, detailed ones for books (MoE-DPO with a prompt gate).

Each *item* is a pair of generic reviews (they name neither the title nor the medium, so either fits a
film or a book) from one draft: a **concise** one and a **detailed** one, which is the concise review
with an elaboration clause appended (same sentiment, same frame). Every item appears twice: once under a
prompt asking to review a movie, where the concise review is chosen (group ``movie``), and once under a
prompt asking to review a book, where the detailed review is chosen (group ``book``). Groups are the
domains; each has half of the pairs. There are no users (``new_users`` is empty).

Defaults: 240 training pairs (120 items), 120 evaluation pairs (60 items, titles never seen in
training).

Single-policy ceiling. Only the prompt tells the two preferences apart, and a single policy reads the
prompt: one that has learned "short for films, long for books" gets 100%, so the counting ceiling
(reads the prompt) is 1.0 here. What conflicts is the taste itself: the same two reviews are preferred
in opposite order, so a policy with one taste whatever the prompt (always concise, always detailed) gets
at most 50% (the ceiling with ``sees="nothing"``). A mixture with a prompt gate splits the conditional
behaviour into two unconditional experts and a router; this task checks that the gate routes by the
prompt, not that the mixture beats DPO's ceiling.
"""

from __future__ import annotations

import random

from mixdpo.tasks.base import (
    Pair,
    TaskData,
    TitleCycle,
    check_sizes,
    numbers_markdown,
    split_titles,
    to_row,
)
from mixdpo.tasks.sentences import SENTIMENTS, draw_request, draw_review
from mixdpo.tasks.words import PROMPTS

NAME = "reviews-domains"
SUMMARY = "generic reviews; concise preferred for movies, detailed for books (1/2 each): prompt gate"
SIZES = {"train_pairs": 240, "eval_pairs": 120}
PREFERENCES = {
    "movie": "the concise review (for movie prompts)",
    "book": "the detailed review (for book prompts)",
}

_DESCRIPTION = """\
# reviews-domains

Each prompt asks for a one-sentence review of an invented movie or book. The two completions are generic
reviews (they fit a film or a book alike) from one draft with one sentiment: a **concise** review and a
**detailed** one, which is the concise review with an elaboration clause appended. Every pair of
reviews appears twice, under a movie prompt and under a book prompt, with opposite preferences:

- **movie** prompts (1/2 of the pairs): the concise review is preferred;
- **book** prompts (1/2 of the pairs): the detailed review is preferred.

There are no users: the group is the domain, which the prompt shows ("film"/"movie" vs "novel"/"book").

**Why one taste cannot satisfy both.** The same two reviews are preferred in opposite order depending on
the domain, so a policy with one taste whatever the prompt ("always concise" or "always detailed") gets
at most 50%: the *ceiling (ignores the prompt)* below. A single policy that conditions on the domain
can get 100% (the *ceiling (reads the prompt)*), so this task is not about beating plain DPO's ceiling:
it checks that a mixture with a **prompt gate** (MoE-DPO) splits the conditional behaviour into two
simple experts, a concise one and a detailed one, and routes each prompt to the right one.

## Numbers for this build

{numbers}
"""


def _pairs(rng: random.Random, n_pairs: int, titles: dict[str, list[str]]) -> list[Pair]:
    cycle, seen, pairs = TitleCycle(rng, titles), set(), []
    for _ in range(n_pairs // 2):
        for _ in range(100):  # a repeat of an earlier pair of reviews is rare; draw again
            draft = draw_review(rng, rng.choice(("movie", "book")))
            sentiment = rng.choice(SENTIMENTS)
            concise, detailed = draft.render(sentiment), draft.render(sentiment, long=True)
            if concise not in seen:
                break
        seen.add(concise)
        movie = draw_request(rng, "movie", cycle.next("movie"), PROMPTS)
        book = draw_request(rng, "book", cycle.next("book"), PROMPTS)
        pairs.append(Pair(movie, concise, detailed, "movie", "movie"))
        pairs.append(Pair(book, detailed, concise, "book", "book"))
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
        groups=["movie", "book"],
        preferences=dict(PREFERENCES),
        recommended={
            "num_experts": 2,
            "gate": "prompt",
            "beta": 0.1,
            "notes": "K=2: a concise and a detailed expert; the prompt gate routes by the domain named in "
            "the prompt. Plain DPO (num_experts=1) can reach 100% here in principle (it reads the "
            "prompt too); compare routing accuracy and per-group expert accuracy, and plain DPO's speed.",
        },
        seed=seed,
        sizes=dict(sizes),
        format=fmt,
    )
    task.description = _DESCRIPTION.format(numbers=numbers_markdown(task))
    return task
