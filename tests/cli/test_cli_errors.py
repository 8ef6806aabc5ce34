"""User mistakes end with exit code 2 and one message that names what to change (no traceback)."""

from __future__ import annotations

import json

import pytest

from mixdpo.cli.main import main


def run(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_missing_train_file(capsys, tmp_path):
    code, err = run(capsys, "train", f"output_dir={tmp_path}", "model=random:llama-tiny")
    assert code == 2
    assert "train_file" in err


def test_unknown_option_suggests_the_closest(capsys, tmp_path):
    code, err = run(capsys, "train", "num_expert=3")
    assert code == 2
    assert "did you mean 'num_experts'" in err


def test_wrong_type(capsys):
    code, err = run(capsys, "train", "--num_experts=three")
    assert code == 2
    assert "num_experts" in err
    assert "integer" in err


def test_missing_config_file(capsys, tmp_path):
    code, err = run(capsys, "train", str(tmp_path / "nope.yaml"))
    assert code == 2
    assert "not found" in err


def test_bad_yaml(capsys, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: [unclosed\n")
    code, err = run(capsys, "train", str(path))
    assert code == 2
    assert "not valid YAML" in err


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"prompt": "p", "chosen": "same", "rejected": "same"}, "rejected"),
        ({"prompt": "p", "chosen": "   ", "rejected": "no"}, "chosen"),
        ({"prompt": "p", "chosen": "yes"}, "rejected"),
        ({"prompt": "p", "chosen": 3, "rejected": "no"}, "chosen"),
    ],
)
def test_bad_rows_name_file_row_and_field(capsys, tmp_path, row, field):
    data = tmp_path / "pairs.jsonl"
    good = {"prompt": "q", "chosen": "a", "rejected": "b"}
    data.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    code, err = run(
        capsys, "train", f"output_dir={tmp_path / 'run'}", "model=random:llama-tiny", f"train_file={data}"
    )
    assert code == 2
    assert str(data) in err
    assert "row 2" in err
    assert field in err


def test_invalid_json_line(capsys, tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n{"prompt": "q", "chosen": \n')
    code, err = run(
        capsys, "train", f"output_dir={tmp_path / 'run'}", "model=random:llama-tiny", f"train_file={data}"
    )
    assert code == 2
    assert "row 2" in err


def test_eval_and_generate_on_something_that_is_not_a_run(capsys, tmp_path):
    code, err = run(capsys, "eval", str(tmp_path), "--data", str(tmp_path / "x.jsonl"))
    assert code == 2
    assert "not a finished mixdpo run" in err
    code, err = run(capsys, "generate", str(tmp_path), "--prompt", "hi")
    assert code == 2


def test_eval_refuses_a_directory_as_an_output_file_before_scoring(capsys, tmp_path):
    # the run does not exist either: the output path is checked first, before any model is loaded
    for flag in ("--out", "--predictions"):
        code, err = run(capsys, "eval", str(tmp_path / "run"), "--data", "x.jsonl", flag, str(tmp_path))
        assert code == 2
        assert f"option '{flag[2:]}': {tmp_path} is a directory; give a file to write" in err


def test_user_gate_without_user_column(capsys, tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n")
    code, err = run(capsys, "train", f"output_dir={tmp_path / 'run'}", "model=random:llama-tiny",
                    f"train_file={data}", "gate=user")  # fmt: skip
    assert code == 2
    assert "user_id" in err


def test_overrides_are_refused_where_they_make_no_sense(capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["eval", str(tmp_path), "--data", "x", "num_experts=2"])
    assert info.value.code == 2
