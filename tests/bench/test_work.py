"""Counting the work of a step: the analytic FLOP model against torch's FLOP counter on real steps of both
libraries, block passes by kind, the architecture numbers, the roofline."""

from __future__ import annotations

import pytest
import torch

from mixdpo.bench.speed import run_case
from mixdpo.bench.speed_cases import SpeedCase, SpeedSettings
from mixdpo.bench.work import Shape, analytic_step_flops, count_flops, decoder_blocks, matmul_roofline
from mixdpo.models import load_model_and_tokenizer

SETTINGS = SpeedSettings(model="random:llama-tiny", batch=2, length=16, steps=1, warmup=0, heads_layers=1)


@pytest.mark.parametrize("spec", ["random:gpt2-tiny", "random:llama-small"])
def test_shape_counts_the_linear_weights_of_a_block(spec):
    model = load_model_and_tokenizer(spec).model
    shape = Shape.of(model.config)
    block = decoder_blocks(model)[0]
    linear = sum(
        m.weight.numel()
        for m in block.modules()
        if type(m).__name__ in ("Linear", "Conv1D") and m.weight.dim() == 2
    )
    assert shape.block_linear_params == linear
    assert shape.layers == len(decoder_blocks(model))
    head = model.get_output_embeddings().weight
    assert shape.params() == shape.layers * linear + head.numel()


def test_count_flops_of_a_matmul():
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    with count_flops() as total:
        a @ b
    assert total() == 2 * 8 * 16 * 4


def test_analytic_full_fine_tuning_by_hand():
    # one block, width 2, vocabulary 3, P_lin 10; 1 pair (R = 2) of T = 4 tokens, C = 2 completion tokens
    shape = Shape(layers=1, width=2, vocab=3, block_linear_params=10, lora_linear_dims=((2, 5),))
    work = analytic_step_flops(shape, method="full", num_experts=1, pairs=1, length=4, completion=2,
                               live_reference=True)  # fmt: skip
    lin, attn, head = 2 * 4 * 10 * 2, 4 * 4 * 4 * 2 * 2, 2 * 2 * 3 * 2 * 2
    assert work.policy == 3 * lin + 3.5 * attn + 3 * head
    assert work.reference == lin + attn + head
    cached = analytic_step_flops(shape, method="full", num_experts=3, pairs=1, length=4, completion=2,
                                 live_reference=False)  # fmt: skip
    assert cached.reference == 0
    assert cached.policy == 3 * work.policy


CASES = [
    (SpeedCase("trl", "full", 1, False), {"trunk": 0.0, "expert": 1.0, "reference": 1.0}),
    (SpeedCase("trl", "lora", 1, True), {"trunk": 0.0, "expert": 1.0, "reference": 0.0}),
    (SpeedCase("mixdpo", "lora", 3, False), {"trunk": 0.0, "expert": 3.0, "reference": 1.0}),
    (SpeedCase("mixdpo", "lora", 1, True), {"trunk": 0.0, "expert": 1.0, "reference": 0.0}),
    # llama-tiny has 2 blocks, heads_layers=1: the trunk is half the model, each expert top one half
    (SpeedCase("mixdpo", "heads", 3, False), {"trunk": 0.5, "expert": 1.5, "reference": 0.5}),
    (SpeedCase("mixdpo", "independent", 2, True), {"trunk": 0.0, "expert": 2.0, "reference": 0.0}),
    # sequential experts: the E-step pass of all experts, then each expert again with autograd
    (SpeedCase("mixdpo", "lora", 3, True, sequential=True), {"trunk": 0.0, "expert": 6.0, "reference": 0.0}),
    (
        SpeedCase("mixdpo", "independent", 2, True, sequential=True),
        {"trunk": 0.0, "expert": 4.0, "reference": 0.0},
    ),
]


@pytest.mark.parametrize(("case", "passes"), CASES, ids=[c.name for c, _ in CASES])
def test_real_steps_do_the_counted_work(case, passes):
    result = run_case(case, SETTINGS)
    assert result.error is None
    assert result.step_s > 0
    assert len(result.step_times) == SETTINGS.steps
    assert result.passes == pytest.approx(passes)
    # the analytic model is within 15% of what torch executed (the rest: small ops it leaves out, and
    # TRL's head over prompt positions)
    assert 0.85 < result.executed_flops / result.analytic_flops < 1.35
    assert result.peak_mb > 0
    assert result.trainable_params > 0


def test_mixdpo_executes_no_more_flops_than_trl_for_the_same_job():
    trl = run_case(SpeedCase("trl", "lora", 1, False), SETTINGS)
    ours = run_case(SpeedCase("mixdpo", "lora", 1, False), SETTINGS)
    assert ours.executed_flops <= trl.executed_flops
    assert ours.analytic_flops == trl.analytic_flops


def test_matmul_roofline_is_measured():
    roof = matmul_roofline(64, 32, 48, seconds=0.05)
    assert roof.flops_per_s > 0
    assert roof.shape == (64, 32, 48)
    assert roof.dtype == "float32"


def test_peak_memory_is_read_before_the_flop_counting_step():
    from types import SimpleNamespace

    from mixdpo.bench.speed import _StepProbe

    probe = _StepProbe(warmup=1, steps=2, counter=None)
    for step in range(3):  # warm-up and the two timed steps
        probe.on_step_begin(None, SimpleNamespace(global_step=step), None)
        probe.on_step_end(None, SimpleNamespace(global_step=step + 1), None)
        assert probe.peak_mb is None
    probe.on_step_begin(None, SimpleNamespace(global_step=3), None)  # the FLOP step starts
    assert probe.peak_mb is not None
    assert probe.peak_mb > 0
    probe.on_step_end(None, SimpleNamespace(global_step=4), None)
    assert len(probe.times) == 2


def test_sequential_experts_add_one_forward_per_expert():
    shape = Shape(layers=1, width=2, vocab=3, block_linear_params=10, lora_linear_dims=((2, 5),))
    kwargs = dict(num_experts=3, pairs=1, length=4, completion=2, live_reference=False)
    lin, attn, head = 2 * 4 * 10 * 2, 4 * 4 * 4 * 2 * 2, 2 * 2 * 3 * 2 * 2
    joint = analytic_step_flops(shape, method="full", **kwargs)
    sequential = analytic_step_flops(shape, method="full", sequential=True, **kwargs)
    assert sequential.policy - joint.policy == 3 * (lin + attn + head)
    adapters = 2 * 4 * 8 * (2 + 5) * 2
    joint = analytic_step_flops(shape, method="lora", **kwargs)
    sequential = analytic_step_flops(shape, method="lora", sequential=True, **kwargs)
    assert sequential.policy - joint.policy == 3 * (lin + attn + adapters + head)
