"""Malformed input through the CLI: exit code 2 and a message naming file, row and field (no traceback);
with --skip-invalid the bad rows are reported, counted in the run directory and skipped."""

from __future__ import annotations

import json

import pytest

from mixdpo.cli.main import main

GOOD = [
    {"prompt": f"Q{i}?", "chosen": f" yes {i}", "rejected": f" no {i}", "user_id": f"u{i % 3}"}
    for i in range(6)
]


def write_rows(path, rows, extra_lines=()):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "".join(extra_lines))
    return path


def train(tmp_path, data, *extra):
    return main(["train", f"output_dir={tmp_path / 'run'}", "model=random:llama-tiny", f"train_file={data}",
                 "max_steps=1", "disable_tqdm=true", "lora_r=4", *extra])  # fmt: skip


def check_refused(capsys, code, *needles):
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)


def test_wrong_encoding(tmp_path, capsys):
    data = tmp_path / "latin1.jsonl"
    data.write_bytes(
        json.dumps(GOOD[0]).encode() + b"\n" + b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n'
    )
    check_refused(capsys, train(tmp_path, data), str(data), "UTF-8")


def test_non_string_user_id(tmp_path, capsys):
    data = write_rows(tmp_path / "d.jsonl", [*GOOD, {**GOOD[0], "user_id": ["alice"]}])
    check_refused(capsys, train(tmp_path, data, "gate=user"), str(data), "row 7", "user_id")


def test_nan_user_feature(tmp_path, capsys):
    rows = [{**r, "age": 30.0 + i} for i, r in enumerate(GOOD)]
    data = tmp_path / "d.jsonl"
    nan_row = '{"prompt": "q", "chosen": "a", "rejected": "b", "user_id": "u1", "age": NaN}\n'
    data.write_text("".join(json.dumps(r) + "\n" for r in rows) + nan_row)
    check_refused(capsys, train(tmp_path, data, "gate=user", "user_feature_columns=[age]"), "row 7", "age")


def test_conversation_with_a_bad_role(tmp_path, capsys):
    row = {"prompt": [{"role": "wizard", "content": "hi"}], "chosen": [{"role": "assistant", "content": "a"}],
           "rejected": [{"role": "assistant", "content": "b"}]}  # fmt: skip
    data = write_rows(tmp_path / "d.jsonl", [row])
    check_refused(capsys, train(tmp_path, data), "row 1", "wizard")


def test_extra_columns_are_ignored(tmp_path):
    data = write_rows(tmp_path / "d.jsonl", [{**r, "source": "web", "scores": [1, 2]} for r in GOOD])
    assert train(tmp_path, data) == 0


def test_a_huge_row_is_reported_and_left_out_not_fatal(tmp_path):
    huge = {"prompt": "Q?", "chosen": " word" * 50_000, "rejected": " no", "user_id": "u0"}
    data = write_rows(tmp_path / "d.jsonl", [*GOOD, huge])
    assert train(tmp_path, data, "max_length=128") == 0
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert len(report["train"]["unfit"]) == 1
    assert "row 7" in report["train"]["unfit"][0]


def test_skip_invalid_reports_and_counts_bad_rows(tmp_path, capsys):
    bad = [{**GOOD[0], "chosen": GOOD[0]["rejected"]}, {"prompt": "q", "chosen": "   ", "rejected": "x"}]
    data = write_rows(tmp_path / "d.jsonl", [*GOOD, *bad], extra_lines=['{"prompt": "truncated\n'])
    check_refused(capsys, train(tmp_path, data), "row 9")  # without the flag: the unreadable line stops it
    assert train(tmp_path, data, "--skip-invalid") == 0
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert len(report["train"]["invalid"]) == 3
    assert any("row 9" in line for line in report["train"]["invalid"])


def test_a_run_directory_from_a_newer_mixdpo(tmp_path, capsys):
    data = write_rows(tmp_path / "d.jsonl", GOOD)
    assert train(tmp_path, data) == 0
    meta_path = tmp_path / "run" / "policy" / "mixdpo_policy.json"
    meta = json.loads(meta_path.read_text())
    meta["format_version"] = 99
    meta_path.write_text(json.dumps(meta))
    check_refused(capsys, main(["eval", str(tmp_path / "run"), "--data", str(data)]), "upgrade mixdpo")


@pytest.mark.parametrize(
    ("override", "needle"),
    [("num_experts=0", "num_experts"), ("beta=-1", "beta"), ("backend=adapters", "backend"),
     ("gate=attention", "gate"), ("loss_type=kto", "loss_type"), ("max_length=-5", "max_length"),
     ("collapse_action=panic", "collapse_action")],
)  # fmt: skip
def test_bad_option_values(tmp_path, capsys, override, needle):
    data = write_rows(tmp_path / "d.jsonl", GOOD)
    check_refused(capsys, train(tmp_path, data, override), needle)
