"""The fast tier of ``mixdpo bench speed`` exactly as documented (slow: every case of the tier, each in its
own process): every case runs, and the JSON, the table and the target checks are written. No timing
assertions: the machines are shared, and the numbers are the benchmark's output, not its test."""

from __future__ import annotations

import json

import pytest

from mixdpo.bench.speed_cases import tier
from tests_cli_helpers import run_mixdpo

pytestmark = pytest.mark.slow


def test_fast_tier_runs_every_case_and_reports(tmp_path):
    result = run_mixdpo("bench", "speed", "--tier", "fast", "--output-dir", str(tmp_path), timeout=1500)
    assert result.returncode == 0, result.stderr[-2000:]
    document = json.loads((tmp_path / "speed.json").read_text())
    expected = tier("fast").cases
    assert [row["case"] for row in document["rows"]] == [c.to_dict() for c in expected]
    failed = [row for row in document["rows"] if row["error"]]
    assert not failed, failed
    for row in document["rows"]:
        assert row["step_s"] > 0
        assert len(row["step_times"]) == document["settings"]["steps"]
        assert row["executed_flops"] > 0
    assert len(document["targets"]) >= 9
    table = (tmp_path / "speed.md").read_text()
    assert all(case.name in table for case in expected)
