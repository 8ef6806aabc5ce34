"""Each task's groups conflict as its docstring says: shares, opposite preferences, held-out titles/users."""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import pytest

from mixdpo.tasks import build_task, group_shares
from mixdpo.tasks.words import TITLES

ALL_TITLES = {title for titles in TITLES.values() for title in titles}


def text(value):
    return value if isinstance(value, str) else value[0]["content"]


def title_of(row) -> str:
    match = re.search(r'"([^"]+)"', text(row["prompt"]))
    assert match, text(row["prompt"])
    assert match.group(1) in ALL_TITLES
    return match.group(1)


def items(rows):
    """(prompt, unordered pair) -> list of (group, chosen) of the rows that label it."""
    out = defaultdict(list)
    for row in rows:
        key = (text(row["prompt"]), frozenset((text(row["chosen"]), text(row["rejected"]))))
        out[key].append((row["group"], text(row["chosen"])))
    return out


def test_word_lists_have_thirty_invented_titles_per_domain():
    assert {domain: len(set(titles)) for domain, titles in TITLES.items()} == {"movie": 30, "book": 30}
    assert not set(TITLES["movie"]) & set(TITLES["book"])


@pytest.mark.parametrize("name", ["reviews-users", "reviews-domains", "reviews-mixed"])
@pytest.mark.parametrize("seed", [0, 1])
def test_eval_titles_are_disjoint_from_train_titles(name, seed):
    task = build_task(name, seed=seed)
    train = {title_of(r) for r in task.train}
    for split in ("eval", "new_users"):
        assert not train & {title_of(r) for r in task.rows(split)}, split
    assert {r["domain"] for r in task.train} == {r["domain"] for r in task.eval} == {"movie", "book"}


# --- reviews-users ------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 5])
def test_users_every_item_has_two_fans_for_praise_and_one_critic_against(seed):
    task = build_task("reviews-users", seed=seed)
    for split, rows in task.splits().items():
        for labels in items(rows).values():
            assert sorted(g for g, _ in labels) == ["critics", "fans", "fans"], split
            fan_choice = {c for g, c in labels if g == "fans"}
            critic_choice = {c for g, c in labels if g == "critics"}
            assert len(fan_choice) == 1
            assert fan_choice != critic_choice
        assert task.ceiling(split).accuracy == pytest.approx(2 / 3)
        assert task.ceiling(split).per_group == {"critics": 0.0, "fans": 1.0}


def test_users_chosen_and_rejected_differ_in_sentiment_only():
    from mixdpo.tasks import words

    positive = set(words.OVERALL["positive"]) | set(words.QUALITY["positive"])
    negative = set(words.OVERALL["negative"]) | set(words.QUALITY["negative"])
    phrases = (words.VERDICT, words.FEELING, words.RECOMMEND)
    sentiment_words = positive | negative | {"a", "an", "thanks", "to", "mostly", "because", "of"}
    sentiment_words |= {w for lists in phrases for items in lists.values() for p in items for w in p.split()}
    for row in build_task("reviews-users").train:
        chosen, rejected = text(row["chosen"]), text(row["rejected"])
        words_c, words_r = set(re.findall(r"[\w-]+", chosen)), set(re.findall(r"[\w-]+", rejected))
        praise, criticism = (chosen, rejected) if row["group"] == "fans" else (rejected, chosen)
        assert title_of(row) in praise
        assert title_of(row) in criticism
        assert set(re.findall(r"[\w-]+", praise)) & positive
        assert not set(re.findall(r"[\w-]+", praise)) & negative
        assert set(re.findall(r"[\w-]+", criticism)) & negative
        assert abs(len(chosen.split()) - len(rejected.split())) <= 3
        assert 8 <= len(chosen.split()) <= 20
        assert words_c ^ words_r <= sentiment_words  # the same frame, only the sentiment words change


def test_users_groups_users_and_shares_as_documented():
    task = build_task("reviews-users")
    assert task.groups == ["fans", "critics"]
    users = defaultdict(set)
    for split in ("train", "eval", "new_users"):
        for row in task.rows(split):
            users[split].add((row["user_id"], row["group"]))
        assert group_shares(task.rows(split)) == pytest.approx({"critics": 1 / 3, "fans": 2 / 3})
    train_groups = Counter(g for _, g in users["train"])
    assert train_groups == {"fans": 8, "critics": 4}
    assert users["eval"] == users["train"]
    assert Counter(g for _, g in users["new_users"]) == {"fans": 4, "critics": 2}
    assert not {u for u, _ in users["new_users"]} & {u for u, _ in users["train"]}
    assert len({u for u, _ in users["train"]}) == 12  # one group per user
    per_user = Counter(r["user_id"] for r in task.train)
    assert set(per_user.values()) == {20}


def test_users_ids_do_not_reveal_the_group():
    fans = [
        {r["user_id"] for r in build_task("reviews-users", seed=s).train if r["group"] == "fans"}
        for s in (0, 1)
    ]
    assert fans[0] != fans[1]


# --- reviews-domains ----------------------------------------------------------------------------------
def test_domains_same_reviews_opposite_preference_by_domain():
    task = build_task("reviews-domains")
    assert task.groups == ["movie", "book"]
    assert not task.new_users
    for split in ("train", "eval"):
        rows = task.rows(split)
        assert group_shares(rows) == {"book": 0.5, "movie": 0.5}
        by_reviews = defaultdict(list)
        for row in rows:
            assert row["group"] == row["domain"]
            chosen, rejected = text(row["chosen"]), text(row["rejected"])
            short, long = sorted((chosen, rejected), key=len)
            assert long.startswith(short[:-1] + ", ")  # the detailed review extends the concise one
            assert chosen == (short if row["domain"] == "movie" else long)
            by_reviews[frozenset((chosen, rejected))].append(row["domain"])
        assert all(sorted(d) == ["book", "movie"] for d in by_reviews.values())
        assert task.ceiling(split).accuracy == 1.0  # a policy that reads the domain can please both
        assert task.ceiling(split, sees="nothing").accuracy == 0.5  # one taste cannot


# --- reviews-mixed ------------------------------------------------------------------------------------
def attributes(review: str) -> tuple[bool, bool]:
    """(long, casual) of a reviews-mixed review."""
    from mixdpo.tasks.words import CASUAL_OPENERS, FORMAL_OPENERS

    casual = review.startswith(CASUAL_OPENERS)
    assert casual or review.startswith(FORMAL_OPENERS)
    assert review.endswith("!" if casual else ".")
    return review.count(",") + review.count(";"), casual


def test_mixed_axes_shares_conflicts_and_ceiling():
    task = build_task("reviews-mixed")
    assert task.groups == ["positive", "concise", "formal"]
    assert not task.new_users
    for split in ("train", "eval"):
        rows = task.rows(split)
        assert group_shares(rows) == pytest.approx({"positive": 0.4, "concise": 0.3, "formal": 0.3})
        labelled = items(rows).values()
        assert all(len(labels) == 2 and labels[0][0] != labels[1][0] for labels in labelled)
        conflicting = [labels for labels in labelled if labels[0][1] != labels[1][1]]
        assert len(conflicting) == pytest.approx(len(labelled) * 2 / 3, abs=2)
        assert task.ceiling(split).accuracy == pytest.approx(2 / 3, abs=0.02)
        for row in rows:  # each axis chose the review that is better on its attribute
            chosen, rejected = text(row["chosen"]), text(row["rejected"])
            if row["group"] == "formal":
                assert not attributes(chosen)[1]
                assert attributes(rejected)[1]
            if row["group"] == "concise":
                assert len(chosen.split()) < len(rejected.split())
