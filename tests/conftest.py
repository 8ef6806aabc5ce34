"""Fixtures shared across test folders."""

from __future__ import annotations

import pytest

from mixdpo.tasks import write_task


@pytest.fixture(scope="session")
def small_task(tmp_path_factory):
    """A small reviews-users task in plain-text format (train 24, eval 12, new users 12 pairs)."""
    out = tmp_path_factory.mktemp("task")
    return write_task("reviews-users", out, format="text", train_pairs=24, eval_pairs=12, new_user_pairs=12)


@pytest.fixture
def isolated_cache(tmp_path_factory, monkeypatch):
    """Reference log-probs cached under the test session's temporary directory, not ~/.cache."""
    monkeypatch.setenv("MIXDPO_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
