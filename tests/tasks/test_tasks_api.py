"""The task API: registry, determinism, sizes, formats, errors, and files the data pipeline accepts."""

from __future__ import annotations

import json

import pytest

from mixdpo.data import build_preference_dataset, load_preference_rows, validate_rows
from mixdpo.errors import ConfigError
from mixdpo.models import build_byte_tokenizer
from mixdpo.tasks import TASKS, build_task, list_tasks, task_sizes, write_task
from mixdpo.tasks.ceiling import SEES

NAMES = sorted(name for name, spec in TASKS.items() if not spec.sampled)  # sampled: test_sampled_tasks.py
SMALL = {  # sizes that keep the pipeline tests fast
    "reviews-users": {"train_pairs": 30, "eval_pairs": 15, "new_user_pairs": 12},
    "reviews-domains": {"train_pairs": 20, "eval_pairs": 10},
    "reviews-mixed": {"train_pairs": 20, "eval_pairs": 10},
}


def test_list_tasks_names_the_six_tasks_with_one_line_summaries():
    tasks = list_tasks()
    assert set(tasks) == {"reviews-users", "reviews-domains", "reviews-mixed"} | {
        "multi-reward",
        "cross-domain",
        "personas",
    }
    assert all(summary and "\n" not in summary for summary in tasks.values())


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_rows_other_seed_other_rows(name):
    first, again = build_task(name, seed=3), build_task(name, seed=3)
    assert first.splits() == again.splits()
    assert first.description == again.description
    other = build_task(name, seed=4)
    for split, rows in first.splits().items():
        if rows:
            assert rows != other.rows(split), split


@pytest.mark.parametrize("name", NAMES)
def test_changing_one_split_size_leaves_the_other_splits_alone(name):
    base = build_task(name)
    smaller = build_task(name, eval_pairs=task_sizes(name)["eval_pairs"] // 2)
    assert smaller.train == base.train
    assert len(smaller.eval) == len(base.eval) // 2


@pytest.mark.parametrize("name", NAMES)
def test_default_and_custom_sizes(name):
    sizes = task_sizes(name)
    task = build_task(name)
    assert len(task.train) == sizes["train_pairs"]
    assert len(task.eval) == sizes["eval_pairs"]
    assert len(task.new_users) == sizes.get("new_user_pairs", 0)
    assert task.sizes == sizes
    small = build_task(name, **SMALL[name])
    for split, rows in small.splits().items():
        assert len(rows) == SMALL[name].get(f"{split}_pairs" if split != "new_users" else "new_user_pairs", 0)


def test_default_sizes_match_the_brief():
    assert task_sizes("reviews-users")["train_pairs"] == 240
    assert task_sizes("reviews-users")["eval_pairs"] == 120
    assert len(build_task("reviews-users").new_users) > 0


@pytest.mark.parametrize("name", NAMES)
def test_rows_are_well_formed_and_pairs_differ(name):
    task = build_task(name)
    for split, rows in task.splits().items():
        for row in rows:
            assert row["prompt"][0]["role"] == "user"
            assert row["prompt"][0]["content"].strip()
            chosen, rejected = row["chosen"][0]["content"], row["rejected"][0]["content"]
            assert row["chosen"][0]["role"] == row["rejected"][0]["role"] == "assistant"
            assert chosen.strip(), split
            assert rejected.strip(), split
            assert chosen != rejected, split
            assert row["group"] in task.groups
            assert row["domain"] in ("movie", "book")
            assert ("user_id" in row) == (name == "reviews-users")


@pytest.mark.parametrize("name", NAMES)
def test_text_format_holds_the_same_pairs_as_plain_text(name):
    chat, text = build_task(name), build_task(name, format="text")
    assert text.format == "text"
    for c, t in zip(chat.train, text.train, strict=True):
        assert t["prompt"] == f"User: {c['prompt'][0]['content']}\nAssistant:"
        assert t["chosen"] == " " + c["chosen"][0]["content"]
        assert t["rejected"] == " " + c["rejected"][0]["content"]
        assert t["group"] == c["group"]
    for sees in SEES:
        assert text.ceiling("eval", sees=sees).accuracy == chat.ceiling("eval", sees=sees).accuracy


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("fmt", ["chat", "text"])
def test_written_files_pass_the_data_pipeline(name, fmt, tmp_path):
    paths = write_task(name, tmp_path / name, seed=1, format=fmt, **SMALL[name])
    tokenizer = build_byte_tokenizer()
    splits = [s for s in ("train", "eval", "new_users") if s in paths]
    assert splits == (["train", "eval", "new_users"] if name == "reviews-users" else ["train", "eval"])
    train, _ = build_preference_dataset(paths["train"], tokenizer)
    for split in splits:
        rows = load_preference_rows(paths[split])
        valid, skipped = validate_rows(rows, skip_invalid=True)
        assert not skipped
        assert len(valid) == len(rows)
        known = train.user_vocab() if split == "eval" and name == "reviews-users" else None
        dataset, report = build_preference_dataset(paths[split], tokenizer, known_users=known)
        assert not report.skipped
        assert len(dataset) == len(rows)
        assert set(dataset.groups) <= set(build_task(name).groups)
        for pair in dataset.pairs:
            assert pair["prompt_ids"]
            assert pair["chosen_ids"]
            assert pair["rejected_ids"]
            assert pair["chosen_ids"] != pair["rejected_ids"]


def test_write_task_writes_readme_and_summary_and_removes_stale_splits(tmp_path):
    paths = write_task("reviews-users", tmp_path, seed=2, train_pairs=9, eval_pairs=6, new_user_pairs=3)
    readme = paths["readme"].read_text()
    assert "critics" in readme
    assert "Files" in readme
    assert "new_users.jsonl" in readme
    meta = json.loads(paths["meta"].read_text())
    assert meta["name"] == "reviews-users"
    assert meta["seed"] == 2
    assert meta["splits"]["eval"]["ceiling"]["prompt"]["accuracy"] == pytest.approx(2 / 3)
    assert len(paths["train"].read_text().splitlines()) == 9
    again = write_task("reviews-users", tmp_path, seed=2, train_pairs=9, eval_pairs=6, new_user_pairs=0)
    assert "new_users" not in again
    assert not (tmp_path / "new_users.jsonl").exists()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "reviews-nobody"}, "task"),
        ({"name": "reviews-users", "format": "markdown"}, "format"),
        ({"name": "reviews-users", "train_items": 3}, "train_items"),
        ({"name": "reviews-users", "train_pairs": 10}, "train_pairs"),  # not a multiple of 3
        ({"name": "reviews-users", "eval_pairs": -3}, "eval_pairs"),
        ({"name": "reviews-users", "critics": 0}, "critics"),
        ({"name": "reviews-users", "new_fans": 1}, "new_fans"),
        ({"name": "reviews-domains", "train_pairs": 7}, "train_pairs"),
        ({"name": "reviews-mixed", "train_pairs": 0}, "train_pairs"),
        ({"name": "reviews-mixed", "seed": "zero"}, "seed"),
    ],
)
def test_bad_options_raise_config_errors_that_name_the_option(kwargs, field):
    kwargs = dict(kwargs)
    with pytest.raises(ConfigError) as info:
        build_task(kwargs.pop("name"), **kwargs)
    assert info.value.field == field


def test_rows_do_not_depend_on_the_process_hash_seed():
    import hashlib
    import os
    import subprocess
    import sys

    script = (
        "import hashlib, json; from mixdpo.tasks import build_task, list_tasks; "
        "rows = [build_task(n).splits() for n in sorted(list_tasks())]; "
        "print(hashlib.sha256(json.dumps(rows).encode()).hexdigest())"
    )
    here = hashlib.sha256(
        json.dumps([build_task(n).splits() for n in sorted(list_tasks())]).encode()
    ).hexdigest()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == here


def test_unknown_split_is_a_config_error():
    with pytest.raises(ConfigError, match="split"):
        build_task("reviews-mixed").rows("test")
