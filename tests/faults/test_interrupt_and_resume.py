"""SIGINT / SIGTERM during training write a complete checkpoint and exit cleanly; --resume continues to the
same final parameters as an uninterrupted run; a checkpoint cut off mid-write is never resumed from."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch
from cli_process import TINY, cli

from mixdpo.cli.main import main
from mixdpo.policy import MixturePolicy

RUN = ["gate=user", "max_steps=60", "logging_steps=1", "per_device_train_batch_size=16", "estep=gumbel",
       "estep_warmup_steps=3", "user_dropout=0.2", "save_strategy=no"]  # fmt: skip


def args(run_dir: Path, task) -> list[str]:
    return ["train", f"output_dir={run_dir}", f"train_file={task['train']}", *TINY, *RUN]


def wait_for_step(run_dir: Path, step: int, proc, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    metrics = run_dir / "metrics.jsonl"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"training ended before step {step}: {proc.stderr.read()}")
        if metrics.is_file():
            steps = [
                json.loads(line).get("step", 0) for line in metrics.read_text().splitlines() if line.strip()
            ]
            if steps and max(steps) >= step:
                return
        time.sleep(0.05)
    raise AssertionError(f"no step {step} within {timeout} s")


def final_state(run_dir: Path) -> dict[str, torch.Tensor]:
    return MixturePolicy.from_pretrained(run_dir / "policy").state_dict()


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_writes_a_checkpoint_and_resume_matches_an_uninterrupted_run(tmp_path, small_task, sig, code):
    interrupted = tmp_path / "interrupted"
    proc = cli(*args(interrupted, small_task))
    wait_for_step(interrupted, 3, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert "checkpoint written to" in err
    assert "--resume" in err
    checkpoints = sorted(interrupted.glob("checkpoint-*"))
    assert len(checkpoints) == 1
    assert (checkpoints[0] / "mixdpo_checkpoint.json").is_file()
    MixturePolicy.from_pretrained(checkpoints[0])  # a usable policy on its own
    assert main([*args(interrupted, small_task), "--resume"]) == 0
    if sig is signal.SIGINT:  # the bit-exact comparison once (it needs a second full run)
        straight = tmp_path / "straight"
        assert main(args(straight, small_task)) == 0
        a, b = final_state(straight), final_state(interrupted)
        assert [n for n in a if not torch.equal(a[n], b[n])] == []


def test_a_checkpoint_cut_off_mid_write_is_skipped_and_refused(tmp_path, small_task, caplog, capsys):
    run = tmp_path / "run"
    assert main([*args(run, small_task), "max_steps=6", "save_strategy=steps", "save_steps=3"]) == 0
    # Simulate a crash while checkpoint-6 was being written: no completion marker, a truncated weight file.
    broken = run / "checkpoint-6"
    (broken / "mixdpo_checkpoint.json").unlink()
    weights = next(broken.rglob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])
    # --resume takes the last *complete* checkpoint (3) and trains on to the end.
    assert (
        main([*args(run, small_task), "max_steps=6", "save_strategy=steps", "save_steps=3", "--resume"]) == 0
    )
    assert any("not completely written" in r.getMessage() for r in caplog.records)
    # Resuming explicitly from a cut-off checkpoint is refused with a clear message.
    shutil.copytree(run / "checkpoint-6", run / "checkpoint-99")
    (run / "checkpoint-99" / "mixdpo_checkpoint.json").unlink()
    code = main([*args(run, small_task), "max_steps=9", f"--resume={run / 'checkpoint-99'}"])
    assert code == 2
    assert "incomplete" in capsys.readouterr().err


def test_resume_without_a_checkpoint_says_so(tmp_path, small_task, capsys):
    assert main([*args(tmp_path / "fresh", small_task), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_an_interrupted_policy_save_refuses_to_load(tmp_path, monkeypatch):
    from mixdpo.errors import MixDPOError
    from mixdpo.policy import PolicyConfig

    policy = MixturePolicy.create(PolicyConfig(num_experts=2))
    policy.save_pretrained(tmp_path)

    def crash(directory):
        raise KeyboardInterrupt  # Ctrl-C while the experts are being written

    monkeypatch.setattr(policy.backend, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        policy.save_pretrained(tmp_path)
    with pytest.raises(MixDPOError, match="interrupted"):
        MixturePolicy.from_pretrained(tmp_path)
