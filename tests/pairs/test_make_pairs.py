"""Pair construction: best vs worst per axis above the margin, prompts, resumable sampling, and the CLI
end to end (the pairs file trains)."""

from __future__ import annotations

import json

import pytest

from mixdpo.data import build_preference_dataset
from mixdpo.errors import ConfigError, DataError
from mixdpo.models import load_model_and_tokenizer
from mixdpo.pairs import PairSettings, builtin_prompts, load_prompts, make_pairs, pairs_for_prompt
from mixdpo.rewards import REWARDS
from tests_cli_helpers import run_mixdpo


def test_pairs_for_prompt_by_hand():
    completions = ["a", "bb", "ccc", "dddd"]
    scores = {"x": [0.1, 0.9, 0.5, 0.0], "y": [1.0, 1.05, 1.0, 1.0]}
    rows = pairs_for_prompt("p", completions, scores, {"x": 0.5, "y": 0.1})
    assert rows == [
        {
            "prompt": "p",
            "chosen": "bb",
            "rejected": "dddd",
            "group": "x",
            "score_chosen": 0.9,
            "score_rejected": 0.0,
        }
    ]  # y's gap 0.05 is under its margin
    # identical best and worst texts make no pair
    assert pairs_for_prompt("p", ["same", "same"], {"x": [1.0, 0.0]}, {"x": 0.1}) == []


def test_builtin_and_file_prompts(tmp_path):
    movies = builtin_prompts("movie")
    assert len(movies) == 180
    assert all(p["domain"] == "movie" for p in movies)
    both = load_prompts("builtin:reviews", limit=4)
    assert [p["domain"] for p in both] == ["movie", "book", "movie", "book"]
    text = tmp_path / "p.txt"
    text.write_text("first prompt\n\n second \n")
    assert [p["prompt"] for p in load_prompts(str(text))] == ["first prompt", "second"]
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"text": "no prompt"}\n')
    with pytest.raises(DataError, match=r"row 2.*prompt"):
        load_prompts(str(bad))
    with pytest.raises(ConfigError, match="neither a file"):
        load_prompts("builtin:poems")


def test_settings_are_checked():
    with pytest.raises(ConfigError, match="at least 2"):
        PairSettings(samples=1)
    with pytest.raises(ConfigError, match="unknown reward 'wit'"):
        PairSettings(rewards=("wit",))


def test_make_pairs_scores_pairs_and_resumes(tmp_path):
    settings = PairSettings(model="random:llama-tiny", rewards=("length", "distinct_2"), samples=4,
                            max_new_tokens=12, batch_size=2)  # fmt: skip
    prompts = load_prompts("builtin:reviews", limit=4)
    margins = {"length": 1.0, "distinct_2": 0.05}
    make_pairs(prompts[:2], tmp_path, settings, margins=margins, log=lambda m: None)
    first = (tmp_path / "scored.jsonl").read_text().splitlines()
    assert len(first) == 2
    messages = []
    summary = make_pairs(prompts, tmp_path, settings, margins=margins, log=messages.append)
    lines = (tmp_path / "scored.jsonl").read_text().splitlines()
    assert lines[:2] == first  # the first two prompts were not redone
    assert len(lines) == 4
    assert any("resuming: 2 of 4" in m for m in messages)
    assert summary["prompts"] == 4

    records = [json.loads(line) for line in lines]
    for record in records:
        assert len(record["completions"]) == 4
        # the stored scores are the reward functions' own values
        texts = record["completions"]
        assert record["scores"]["length"] == REWARDS["length"](texts)
    pairs = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert len(pairs) == summary["pairs"] > 0
    for pair in pairs:
        reward = REWARDS[pair["group"]]
        chosen, rejected = pair["chosen"][0]["content"], pair["rejected"][0]["content"]  # chat format
        gap = reward([chosen])[0] - reward([rejected])[0]
        assert gap >= margins[pair["group"]] - 1e-9
    # the trainer reads the file
    tokenizer = load_model_and_tokenizer("random:llama-tiny").tokenizer
    dataset, _ = build_preference_dataset(str(tmp_path / "pairs.jsonl"), tokenizer)
    assert len(dataset) == len(pairs)
    assert set(dataset.groups) == set(summary["pairs_per_axis"])


def test_cli_make_pairs(tmp_path):
    result = run_mixdpo(
        "make-pairs", "--model", "random:llama-tiny", "--prompts", "builtin:books", "--limit", "3",
        "--rewards", "length,brevity", "--samples", "3", "--max-new-tokens", "10",
        "--margin", "length=1,brevity=0.01", "--out", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "pairs from 3 prompts" in result.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["margins"] == {"length": 1.0, "brevity": 0.01}
    bad = run_mixdpo(
        "make-pairs", "--out", str(tmp_path / "x"), "--rewards", "wit", "--model", "random:llama-tiny"
    )
    assert bad.returncode == 2
    assert "unknown reward 'wit'" in bad.stderr
