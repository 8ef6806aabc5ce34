from __future__ import annotations

import pytest

from mixdpo.tasks import write_task


@pytest.fixture(scope="session")
def small_task(tmp_path_factory):
    out = tmp_path_factory.mktemp("task")
    return write_task("reviews-users", out, format="text", train_pairs=24, eval_pairs=12, new_user_pairs=12)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MIXDPO_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
