"""single_policy_ceiling on hand-made rows: counting, ties, prompt-blind items, cycles."""

from __future__ import annotations

import pytest

from mixdpo.tasks import Ceiling, single_policy_ceiling, to_row
from mixdpo.tasks.base import Pair


def row(prompt, chosen, rejected, group):
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, "group": group}


def test_no_conflict_means_ceiling_one():
    rows = [row("p", "a", "b", "g"), row("q", "b", "a", "h")]  # different prompts: no conflict
    c = single_policy_ceiling(rows)
    assert c == Ceiling(1.0, {"g": 1.0, "h": 1.0}, 2, 2, 0, True, "prompt")


def test_opposite_groups_two_to_one():
    rows = [row("p", "a", "b", "fans")] * 2 + [row("p", "b", "a", "critics")]
    c = single_policy_ceiling(rows)
    assert c.accuracy == pytest.approx(2 / 3)
    assert c.per_group == {"critics": 0.0, "fans": 1.0}
    assert (c.num_pairs, c.num_items, c.num_conflicting) == (3, 1, 3)


def test_ties_follow_the_largest_group_then_the_name():
    rows = [
        row("p", "a", "b", "x"),
        row("p", "b", "a", "y"),
        row("q", "c", "d", "y"),
        row("q", "d", "c", "z"),
    ]
    rows += [row("r", "e", "f", "y")]  # y is the largest group
    c = single_policy_ceiling(rows)
    assert c.accuracy == pytest.approx(3 / 5)
    assert c.per_group == {"x": 0.0, "y": 1.0, "z": 0.0}
    tie = single_policy_ceiling([row("p", "a", "b", "m"), row("p", "b", "a", "n")])
    assert tie.accuracy == 0.5
    assert tie.per_group == {"m": 1.0, "n": 0.0}


def test_sees_nothing_merges_items_across_prompts():
    rows = [row("film", "short", "long", "movie"), row("book", "long", "short", "book")]
    assert single_policy_ceiling(rows).accuracy == 1.0
    blind = single_policy_ceiling(rows, sees="nothing")
    assert blind.accuracy == 0.5
    assert blind.num_items == 1
    assert blind.sees == "nothing"
    with pytest.raises(ValueError, match="sees"):
        single_policy_ceiling(rows, sees="user")


def test_chat_and_text_rows_count_the_same():
    pairs = [
        Pair("Review X.", "Great.", "Bad.", "fans", "movie", "u1"),
        Pair("Review X.", "Bad.", "Great.", "critics", "movie", "u2"),
    ]
    for fmt in ("chat", "text"):
        c = single_policy_ceiling([to_row(p, fmt) for p in pairs])
        assert c.accuracy == 0.5
        assert c.num_items == 1


def test_a_cycle_of_majorities_is_not_reachable():
    rows = [row("p", "a", "b", "g"), row("p", "b", "c", "g"), row("p", "c", "a", "g")]
    c = single_policy_ceiling(rows)
    assert c.accuracy == 1.0
    assert not c.tight
    assert single_policy_ceiling(rows[:2]).tight


def test_empty_rows_and_rows_without_groups():
    assert single_policy_ceiling([]).accuracy == 1.0
    c = single_policy_ceiling([{"prompt": "p", "chosen": "a", "rejected": "b"}])
    assert c.per_group == {"?": 1.0}


def test_docstring_examples_run():
    import doctest

    import mixdpo.tasks
    import mixdpo.tasks.sentences

    for module in (mixdpo.tasks, mixdpo.tasks.sentences):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, module.__name__
        assert result.attempted > 0
