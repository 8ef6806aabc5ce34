"""Tasks built from sampled, scored completions: the pair rule, the loader's errors, and the three tasks'
promises (who prefers what, disjoint prompts, ceilings) on hand-made samples and on the shipped ones."""

from __future__ import annotations

import gzip
import json
import random
from collections import Counter

import pytest

from mixdpo.errors import ConfigError, DataError
from mixdpo.pairs.construct import DEFAULT_MARGINS
from mixdpo.tasks import build_task, write_task
from mixdpo.tasks.base import SPLITS
from mixdpo.tasks.multi_reward import AXES, MARGINS
from mixdpo.tasks.sampled import ScoredPrompt, axis_agreement, extreme_pair, load_samples, split_prompts

REWARDS = ("sentiment", "readability", "length", "brevity")


def _item(scores: dict[str, tuple[float, ...]], completions=("a", "b", "c", "d")) -> ScoredPrompt:
    return ScoredPrompt(0, "Review X.", "movie", tuple(completions), scores)


def test_extreme_pair_takes_the_best_against_the_worst():
    item = _item({"sentiment": (0.1, 0.9, -0.7, 0.9)})
    assert extreme_pair(item, "sentiment", 0.5) == ("b", "c")  # tie at the top: the earlier one
    assert extreme_pair(item, "sentiment", 0.5, higher=False) == ("c", "b")
    assert extreme_pair(item, "sentiment", 1.61) is None  # gap 1.6 below the margin
    same_text = _item({"sentiment": (0.9, -0.9)}, completions=("same", "same"))
    assert extreme_pair(same_text, "sentiment", 0.1) is None
    with pytest.raises(ConfigError, match="no 'length' scores"):
        extreme_pair(item, "length", 1.0)


def _samples(n_per_domain: int = 60, seed: int = 0) -> list[dict]:
    """Scored prompts whose completions carry their scores in the text, so tests can check pairs."""
    rng = random.Random(seed)
    records = []
    for domain in ("movie", "book"):
        for i in range(n_per_domain):
            words = [rng.randint(5, 40) for _ in range(4)]
            sentiment = [round(rng.uniform(-1, 1), 3) for _ in range(4)]
            readability = [round(rng.uniform(20, 90), 1) for _ in range(4)]
            completions = [
                f"{domain}{i}-{j} s={sentiment[j]} r={readability[j]} " + "w " * words[j] for j in range(4)
            ]
            records.append(
                {
                    "index": len(records),
                    "prompt": [{"role": "user", "content": f"Review {domain} {i}."}],
                    "domain": domain,
                    "completions": completions,
                    "scores": {
                        "sentiment": sentiment,
                        "readability": readability,
                        "length": [w + 3 for w in words],
                        "brevity": [1 / (1 + (w + 3) / 20) for w in words],
                    },
                }
            )
    return records


@pytest.fixture
def samples_file(tmp_path):
    path = tmp_path / "scored.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for record in _samples():
            f.write(json.dumps(record) + "\n")
    return path


def _score(text: str, key: str) -> float:
    return float(next(part for part in text.split() if part.startswith(f"{key}="))[2:])


def _text(message) -> str:
    return message if isinstance(message, str) else message[0]["content"]


def test_load_samples_reads_gzip_and_plain_and_names_a_bad_line(samples_file, tmp_path):
    items = load_samples(samples_file)
    assert len(items) == 120
    assert items[0].request == "Review movie 0."
    assert set(items[0].scores) == set(REWARDS)
    plain = tmp_path / "scored.jsonl"
    lines = [json.dumps(r) for r in _samples(2)]
    plain.write_text("\n".join([*lines[:2], '{"index": 9, "prompt": "x"}', *lines[2:]]) + "\n")
    with pytest.raises(DataError, match=r"scored\.jsonl, row 3: not a scored prompt"):
        load_samples(plain)
    with pytest.raises(DataError, match="no such file; make one with `mixdpo make-pairs"):
        load_samples(tmp_path / "missing.jsonl")


def test_split_prompts_is_disjoint_and_refuses_too_few():
    items = [ScoredPrompt(i, f"p{i}", "movie", ("a", "b"), {}) for i in range(10)]
    parts = split_prompts(random.Random(0), items, {"train": 6, "eval": 3}, "usable")
    assert [len(v) for v in parts.values()] == [6, 3]
    assert not {p.index for p in parts["train"]} & {p.index for p in parts["eval"]}
    with pytest.raises(ConfigError, match=r"train 8 \+ eval 3 = 11 prompts, but only 10 usable"):
        split_prompts(random.Random(0), items, {"train": 8, "eval": 3}, "usable")


def test_axis_agreement_counts_by_hand():
    items = [
        _item({"x": (1.0, 0.0, 0.5, 0.5), "y": (0.0, 1.0, 0.5, 0.5)}),  # x: a over b; y says b: opposite
        _item({"x": (1.0, 0.0, 0.5, 0.5), "y": (1.0, 0.0, 0.5, 0.5)}),  # same
        _item({"x": (1.0, 0.0, 0.5, 0.5), "y": (0.3, 0.3, 0.5, 0.5)}),  # tie
    ]
    got = axis_agreement(items, ("x", "y"), {"x": 0.5, "y": 0.5})
    assert got["x vs y"] == pytest.approx({"same": 1 / 3, "tie": 1 / 3, "other": 1 / 3})
    # y's pairs: item 1 (b over a, x says a: opposite), item 2 (a over b: same); item 3 has no y pair
    assert got["y vs x"] == pytest.approx({"same": 0.5, "tie": 0.0, "other": 0.5})


def test_personas_groups_rank_every_item_oppositely(samples_file):
    task = build_task(
        "personas", samples=samples_file, train_pairs=60, eval_pairs=30, new_user_pairs=18, seed=1
    )
    assert [len(task.rows(s)) for s in SPLITS] == [60, 30, 18]
    for row in task.train + task.eval + task.new_users:
        chosen, rejected = _score(_text(row["chosen"]), "s"), _score(_text(row["rejected"]), "s")
        assert (chosen - rejected >= 0.5) if row["group"] == "fans" else (rejected - chosen >= 0.5)
    assert task.shares("train") == pytest.approx({"critics": 1 / 3, "fans": 2 / 3})
    ceiling = task.ceiling("train")
    assert ceiling.accuracy == pytest.approx(2 / 3)
    assert ceiling.per_group == {"critics": 0.0, "fans": 1.0}
    prompts = {s: {_text(r["prompt"]) for r in task.rows(s)} for s in SPLITS}
    assert not prompts["train"] & prompts["eval"]
    assert not prompts["new_users"] & (prompts["train"] | prompts["eval"])
    users = {s: {r["user_id"] for r in task.rows(s)} for s in SPLITS}
    assert users["eval"] == users["train"]
    assert len(users["train"]) == 12
    assert not users["new_users"] & users["train"]
    per_user = Counter(r["user_id"] for r in task.train)
    assert max(per_user.values()) - min(per_user.values()) <= 1 + 60 // 12  # spread evenly within groups
    again = build_task(
        "personas", samples=samples_file, train_pairs=60, eval_pairs=30, new_user_pairs=18, seed=1
    )
    assert again.splits() == task.splits()
    assert build_task("personas", samples=samples_file, train_pairs=60, eval_pairs=30,
                      new_user_pairs=18, seed=2).train != task.train  # fmt: skip


def test_cross_domain_flips_the_length_preference_by_domain(samples_file):
    task = build_task("cross-domain", samples=samples_file, train_pairs=60, eval_pairs=20, format="text")
    assert task.shares("train") == {"books-detailed": 0.5, "movies-concise": 0.5}
    for row in task.train + task.eval:
        gap = len(row["chosen"].split()) - len(row["rejected"].split())
        if row["domain"] == "book":
            assert row["group"] == "books-detailed"
            assert gap >= 8
        else:
            assert row["group"] == "movies-concise"
            assert gap <= -8
    assert row["prompt"].startswith("User: Review")
    assert not {r["prompt"] for r in task.train} & {r["prompt"] for r in task.eval}
    with pytest.raises(ConfigError, match="movie prompts have a length gap"):
        build_task("cross-domain", samples=samples_file, train_pairs=200, eval_pairs=20)


def test_multi_reward_pools_each_axis_best_over_worst(samples_file):
    assert DEFAULT_MARGINS["sentiment"] == MARGINS["sentiment"]
    assert {a: DEFAULT_MARGINS[a] for a in AXES} == MARGINS
    task = build_task("multi-reward", samples=samples_file, train_prompts=80, eval_prompts=30)
    assert set(task.shares("train")) <= set(AXES)
    key = {"sentiment": "s", "readability": "r"}
    for row in task.train:
        chosen, rejected = _text(row["chosen"]), _text(row["rejected"])
        if row["group"] == "length":
            assert len(chosen.split()) - len(rejected.split()) >= 5
        else:
            axis = row["group"]
            assert _score(chosen, key[axis]) - _score(rejected, key[axis]) >= MARGINS[axis]
    # a prompt carries at most one pair per axis, and train and eval share no prompt
    per_prompt = Counter((_text(r["prompt"]), r["group"]) for r in task.train)
    assert max(per_prompt.values()) == 1
    assert not {_text(r["prompt"]) for r in task.train} & {_text(r["prompt"]) for r in task.eval}
    assert "| sentiment vs readability |" in task.description


def test_word_list_tasks_take_no_samples(samples_file):
    with pytest.raises(ConfigError, match="takes no samples file"):
        build_task("reviews-users", samples=samples_file)


@pytest.mark.parametrize("name", ["multi-reward", "cross-domain", "personas"])
def test_shipped_samples_build_every_sampled_task(name, tmp_path):
    paths = write_task(name, tmp_path, seed=0)
    meta = json.loads(paths["meta"].read_text())
    assert meta["splits"]["train"]["pairs"] > 0
    assert meta["splits"]["eval"]["pairs"] > 0
    assert "SmolLM2" in paths["readme"].read_text()
    if name == "personas":
        assert meta["splits"]["eval"]["ceiling"]["prompt"]["accuracy"] == pytest.approx(2 / 3)


def test_cli_lists_and_writes_tasks(samples_file, tmp_path, capsys):
    from mixdpo.cli.main import main

    assert main(["tasks"]) == 0
    listed = capsys.readouterr().out
    for name in ("reviews-users", "multi-reward", "cross-domain", "personas"):
        assert name in listed
    out = tmp_path / "xd"
    code = main(["tasks", "cross-domain", "--out", str(out), "--samples", str(samples_file),
                 "--size", "train_pairs=40", "--size", "eval_pairs=10", "--format", "text"])  # fmt: skip
    assert code == 0
    assert "train         40 pairs" in capsys.readouterr().out
    assert len((out / "eval.jsonl").read_text().splitlines()) == 10
    assert f"samples='{samples_file}'" in (out / "README.md").read_text()
    assert main(["tasks", "cross-domain", "--out", str(out), "--samples", str(samples_file),
                 "--size", "train_pairs=1000"]) == 2  # fmt: skip
    assert "but only" in capsys.readouterr().err
    assert main(["tasks", "personas"]) == 2
    assert "--out data/personas" in capsys.readouterr().err
    assert main(["tasks", "nope", "--out", str(out)]) == 2
