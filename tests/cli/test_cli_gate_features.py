"""``gate_features=embeddings`` end to end through the CLI: train a prompt gate on token embeddings, then
evaluate and generate from the saved run, which reads the same features."""

from __future__ import annotations

import json

import torch
import yaml

from mixdpo.cli.main import main
from mixdpo.policy import MixturePolicy

TINY = ["model=random:llama-tiny", "lora_r=4", "per_device_train_batch_size=8", "disable_tqdm=true"]


def test_a_prompt_gate_on_token_embeddings_trains_evaluates_and_generates(tmp_path, small_task, capsys):
    run = tmp_path / "run"
    args = ["train", f"output_dir={run}", f"train_file={small_task['train']}",
            f"eval_file={small_task['eval']}", "gate=prompt", "gate_features=embeddings", "max_steps=2",
            *TINY]  # fmt: skip
    assert main(args) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["gate_features"] == "embeddings"
    policy = MixturePolicy.from_pretrained(run / "policy")
    assert policy.backend.gate_features == "embeddings"
    # the gate was standardised on the training prompts' mean token embeddings
    embeddings = policy.backend.feature_model().get_input_embeddings().weight.detach()
    first = json.loads(small_task["train"].read_text().splitlines()[0])["prompt"]
    ids = policy.tokenizer(first, add_special_tokens=False)["input_ids"]
    assert policy.gate.fitted
    assert policy.gate.feature_mean.shape == embeddings[0].shape
    torch.testing.assert_close(
        policy.backend.prompt_features(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))[0],
        embeddings[ids].mean(0),
    )

    out = tmp_path / "heldout.json"
    assert main(["eval", str(run), "--data", str(small_task["eval"]), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["num_pairs"] == 12
    capsys.readouterr()
    code = main(["generate", str(run), "--prompt", first, "--max-new-tokens", "4", "--json", "--seed", "0"])
    assert code == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(line["weights"]) == 2


def test_an_unknown_choice_is_a_clear_error(tmp_path, small_task, capsys):
    args = ["train", f"output_dir={tmp_path / 'run'}", f"train_file={small_task['train']}", "gate=prompt",
            "gate_features=words", "max_steps=1", *TINY]  # fmt: skip
    assert main(args) != 0
    err = capsys.readouterr().err
    assert "gate_features" in err
    assert "last, embeddings" in err
    assert "Traceback" not in err
