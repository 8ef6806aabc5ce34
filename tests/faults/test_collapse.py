"""Expert collapse is detected (an unused expert, two identical experts), reported in the metrics, the log
and the checkpoints, and with collapse_action=reseed repaired by splitting the busiest expert."""

from __future__ import annotations

import json
import math

import torch

from mixdpo.cli.main import main
from mixdpo.data import build_preference_dataset
from mixdpo.policy import MixturePolicy
from mixdpo.trainer import MixDPOConfig, MixDPOTrainer
from mixdpo.trainer.collapse import CollapseMonitor


def test_monitor_reports_dead_and_duplicate_experts_once_per_patience():
    monitor = CollapseMonitor(num_experts=3, min_usage=0.05, patience=3)
    q = torch.tensor([[0.6, 0.4, 0.0], [0.5, 0.5, 0.0]])
    margins = torch.tensor([[1.0, 1.0, 0.3], [2.0, 2.0, 0.1]])  # experts 0 and 1 identical
    events = [e for step in range(3) for e in monitor.update(q, margins, step)]
    kinds = sorted((e.kind, e.expert, e.twin) for e in events)
    assert kinds == [("dead", 2, None), ("duplicate", 1, 0)]
    assert monitor.update(q, margins, 3) == []  # counting restarted after the report
    assert monitor.update(torch.ones(2, 1), torch.ones(2, 1), 0) == []  # K = 1: nothing to collapse


def make(tmp_path, task, **options):
    args = MixDPOConfig(
        output_dir=str(tmp_path), model="random:llama-tiny", num_experts=3, lora_r=4, learning_rate=3e-3,
        per_device_train_batch_size=8, disable_tqdm=True, collapse_patience=3, collapse_min_usage=0.05,
        estep_warmup_steps=0, **options,
    )  # fmt: skip
    policy = MixturePolicy.create(args.policy_config())
    with torch.no_grad():  # provoke collapse: the gate never routes to expert 2
        policy.gate.logits.copy_(torch.tensor([0.0, 0.0, -30.0]))
    dataset, _ = build_preference_dataset(task["train"], policy.tokenizer, args.tokenization_settings())
    return MixDPOTrainer(policy, args, train_dataset=dataset), policy


def test_a_dead_expert_is_reported(tmp_path, small_task):
    trainer, _ = make(tmp_path, small_task, max_steps=4, collapse_action="warn")
    trainer.train()
    events = trainer.collapse_events
    assert [(e.kind, e.expert, e.action) for e in events] == [("dead", 2, "reported")]
    assert events[0].step == 2


def test_reseed_splits_the_busiest_expert_into_the_dead_one(tmp_path, small_task):
    trainer, policy = make(tmp_path, small_task, max_steps=3, collapse_action="reseed")
    trainer.train()
    (event,) = trainer.collapse_events
    assert event.kind == "dead"
    assert event.action.startswith("reseeded from expert ")
    source = int(event.action.rsplit(" ", 1)[1])
    weights = torch.softmax(policy.gate.logits.detach(), -1)
    assert weights[2].item() > 0.2  # it gets half of the source's weight instead of e^-30
    assert math.isclose(weights[2].item(), weights[source].item(), rel_tol=1e-5)
    dead = torch.cat([p.detach().flatten() for p in policy.backend.expert_parameters(2)])
    src = torch.cat([p.detach().flatten() for p in policy.backend.expert_parameters(source)])
    assert not torch.equal(dead, src)  # a perturbed copy, not the same expert
    assert torch.allclose(dead, src, atol=0.1 * src.abs().max().item())


def test_identical_experts_are_reported_through_the_cli(tmp_path, small_task):
    # heads experts made from one checkpoint without noise and a soft E-step stay identical (duplicates)
    code = main(["train", f"output_dir={tmp_path}", "model=random:llama-tiny",
                 f"train_file={small_task['train']}", "backend=heads", "init_noise=0", "estep_warmup_steps=0",
                 "collapse_patience=2", "max_steps=3", "save_strategy=steps", "save_steps=3",
                 "disable_tqdm=true", "logging_steps=1"])  # fmt: skip
    assert code == 0
    marker = json.loads((tmp_path / "checkpoint-3" / "mixdpo_checkpoint.json").read_text())
    assert [(e["kind"], e["expert"], e["twin"]) for e in marker["collapse_events"]] == [("duplicate", 1, 0)]
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert max(r.get("train/collapse_events", 0) for r in logged) == 1
