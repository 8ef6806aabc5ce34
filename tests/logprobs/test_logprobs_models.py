"""sequence_logps on tiny random GPT-2 and Llama models against an independent token-by-token scorer."""

from __future__ import annotations

import pytest
import torch

from logprobs.lp_testlib import MODELS, make_batch, random_pairs, token_by_token
from mixdpo.logprobs import (
    check_hidden_path,
    hidden_path_unsupported_reason,
    sequence_logps,
    split_chosen_rejected,
)

PAIRS = random_pairs(5, seed=1)


@pytest.fixture(scope="module", params=sorted(MODELS))
def model(request):
    return MODELS[request.param]()


@pytest.fixture(scope="module")
def expected(model):
    return token_by_token(model, PAIRS).float()


def test_tiny_models_take_the_hidden_path(model):
    assert hidden_path_unsupported_reason(model) is None


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("project_only_completion", [True, False])
def test_matches_token_by_token(model, expected, side, project_only_completion):
    ids, att, comp = make_batch(PAIRS, side=side, extra_pad=2)
    with torch.no_grad():
        got = sequence_logps(model, ids, att, comp, project_only_completion=project_only_completion)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_average_is_sum_over_completion_length(model, expected):
    ids, att, comp = make_batch(PAIRS, side="left")
    with torch.no_grad():
        got = sequence_logps(model, ids, att, comp, average=True)
    lengths = torch.tensor([len(c) for _, c in PAIRS], dtype=torch.float32)
    torch.testing.assert_close(got, expected / lengths, atol=1e-5, rtol=1e-5)


def test_padding_token_id_does_not_matter(model):
    results = []
    for side in ("right", "left"):
        for pad_id in (0, 7):
            ids, att, comp = make_batch(PAIRS, side=side, pad_id=pad_id, extra_pad=1)
            with torch.no_grad():
                results.append(sequence_logps(model, ids, att, comp))
    for other in results[1:]:
        torch.testing.assert_close(other, results[0], atol=1e-5, rtol=1e-5)


def test_chosen_and_rejected_in_one_forward_equal_separate_forwards(model):
    chosen, rejected = random_pairs(3, seed=2), random_pairs(3, seed=3)
    # Same prompts, other completions.
    rejected = [(c[0], r[1]) for c, r in zip(chosen, rejected, strict=True)]
    with torch.no_grad():
        joint = sequence_logps(model, *make_batch(chosen + rejected))
        alone_c = sequence_logps(model, *make_batch(chosen))
        alone_r = sequence_logps(model, *make_batch(rejected, side="left"))
    got_c, got_r = split_chosen_rejected(joint)
    torch.testing.assert_close(got_c, alone_c, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_r, alone_r, atol=1e-5, rtol=1e-5)


def test_hidden_and_logits_paths_agree_in_value_and_parameter_gradients(model):
    ids, att, comp = make_batch(PAIRS, side="left")
    params = [p for p in model.parameters() if p.requires_grad]
    values, grads = [], []
    for fast in (True, False):
        logps = sequence_logps(model, ids, att, comp, project_only_completion=fast)
        values.append(logps.detach())
        grads.append(torch.autograd.grad(logps.sum(), params))
    torch.testing.assert_close(values[0], values[1], atol=1e-5, rtol=1e-5)
    for g_fast, g_full in zip(*grads, strict=True):
        torch.testing.assert_close(g_fast, g_full, atol=1e-5, rtol=1e-4)
    assert check_hidden_path(model, ids, att, comp) < 1e-5


def test_gradients_reach_every_parameter_that_shapes_the_output(model):
    model.zero_grad()
    ids, att, comp = make_batch(PAIRS)
    sequence_logps(model, ids, att, comp).sum().backward()
    head = model.get_output_embeddings().weight
    assert head.grad is not None
    assert head.grad.abs().sum() > 0
    no_grad = [name for name, p in model.named_parameters() if p.grad is None]
    assert no_grad == []
    model.zero_grad()


def test_hidden_path_projects_only_completion_rows(model):
    ids, att, comp = make_batch(PAIRS, side="left", extra_pad=3)
    rows: list[int] = []
    hook = model.get_output_embeddings().register_forward_hook(
        lambda module, args, out: rows.append(args[0].reshape(-1, args[0].shape[-1]).shape[0])
    )
    try:
        with torch.no_grad():
            sequence_logps(model, ids, att, comp)
            fast = sum(rows)
            rows.clear()
            sequence_logps(model, ids, att, comp, project_only_completion=False)
            full = sum(rows)
    finally:
        hook.remove()
    assert fast == int(comp.sum())
    assert full == ids.numel()
    assert fast < full


def test_bfloat16_model_gives_finite_float32(model, expected):
    half = MODELS["llama" if model.config.model_type == "llama" else "gpt2"]().to(torch.bfloat16)
    ids, att, comp = make_batch(PAIRS, side="left")
    with torch.no_grad():
        got = sequence_logps(half, ids, att, comp)
    assert got.dtype == torch.float32
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, expected, atol=0.5, rtol=0.05)


def test_completion_on_padding_is_rejected(model):
    ids, att, comp = make_batch(PAIRS, side="right", extra_pad=1)
    comp[:, -1] = 1
    with pytest.raises(ValueError, match="padding"):
        sequence_logps(model, ids, att, comp)
