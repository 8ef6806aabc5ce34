"""compute_reference_logps, lookup and attach_reference, against direct no-grad computation."""

from __future__ import annotations

import pytest
import torch

from logprobs.lp_testlib import tiny_gpt2, tiny_llama
from mixdpo.batch import PROMPT_FEATURES, REF_CHOSEN_LOGPS, REF_REJECTED_LOGPS
from mixdpo.errors import DataError
from mixdpo.logprobs import sequence_logps, split_chosen_rejected
from mixdpo.reference import (
    ReferenceStats,
    ReferenceTable,
    attach_reference,
    compute_reference_logps,
    sequence_score_fn,
)
from reference.ref_testlib import FakeScore, preference_batches, preference_data

DATA = preference_data(7)


def _direct(model, batches):
    """[N] chosen and rejected log-probs, one no-grad sequence_logps per batch, placed by example_index."""
    chosen, rejected = torch.zeros(len(DATA)), torch.zeros(len(DATA))
    with torch.no_grad():
        for b in batches:
            c, r = split_chosen_rejected(
                sequence_logps(model, b["input_ids"], b["attention_mask"], b["completion_mask"])
            )
            chosen[b["example_index"]], rejected[b["example_index"]] = c, r
    return chosen, rejected


def test_values_equal_direct_computation_shared_and_per_expert_references():
    models = [tiny_llama(0), tiny_gpt2(1)]
    batches = preference_batches(DATA, batch_size=3)
    stats = ReferenceStats()
    table = compute_reference_logps(sequence_score_fn(models), batches, len(DATA), num_columns=2, stats=stats)
    assert stats.forward_batches == len(batches) == 3
    assert stats.examples_scored == len(DATA)
    assert table.chosen.shape == table.rejected.shape == (len(DATA), 2)
    assert table.chosen.dtype == torch.float32
    assert not table.chosen.requires_grad
    for column, model in enumerate(models):
        chosen, rejected = _direct(model, preference_batches(DATA, batch_size=2, order_seed=None))
        torch.testing.assert_close(table.chosen[:, column], chosen, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(table.rejected[:, column], rejected, atol=1e-5, rtol=1e-5)


def test_score_fn_restores_train_mode_and_runs_without_grad():
    model = tiny_llama(0).train()
    seen = []
    # The hidden path runs the decoder, then the head on the completion rows: hook the decoder.
    model.get_decoder().register_forward_hook(
        lambda m, a, o: seen.append((m.training, torch.is_grad_enabled()))
    )
    compute_reference_logps(sequence_score_fn(model), preference_batches(DATA, 4), len(DATA), num_columns=1)
    assert seen
    assert all(mode == (False, False) for mode in seen)
    assert model.training


def test_missing_examples_raise_a_clear_error():
    batches = preference_batches(DATA, batch_size=3)[:-1]  # as with drop_last=True
    with pytest.raises(DataError, match=r"never scored.*exactly once"):
        compute_reference_logps(FakeScore(), batches, len(DATA), num_columns=1)


def test_duplicate_and_out_of_range_examples_raise():
    batches = preference_batches(DATA, batch_size=3)
    with pytest.raises(DataError, match="more than once"):
        compute_reference_logps(FakeScore(), [*batches, batches[0]], len(DATA), num_columns=1)
    with pytest.raises(DataError, match="out of range"):
        compute_reference_logps(FakeScore(), batches, len(DATA) - 1, num_columns=1)


def test_incomplete_shard_is_allowed_when_asked_and_left_nan():
    batches = preference_batches(DATA, batch_size=3)
    table = compute_reference_logps(
        FakeScore(), batches[:1], len(DATA), num_columns=1, require_complete=False
    )
    scored = batches[0]["example_index"]
    assert torch.isfinite(table.chosen[scored]).all()
    assert int(torch.isnan(table.chosen).sum()) == len(DATA) - len(scored)


def test_wrong_score_shape_is_rejected():
    with pytest.raises(ValueError, match=r"expected \[B, R\]"):
        compute_reference_logps(
            FakeScore(num_columns=2), preference_batches(DATA, 3), len(DATA), num_columns=3
        )


def test_lookup_and_attach_follow_the_batch_contract():
    n = len(DATA)
    shared = compute_reference_logps(FakeScore(features=4), preference_batches(DATA, 3), n, num_columns=1)
    batch = preference_batches(DATA, batch_size=4, order_seed=5)[0]
    idx = batch["example_index"]
    chosen, rejected = shared.lookup(idx)
    assert chosen.shape == (4, 1)
    torch.testing.assert_close(chosen[:, 0], -idx.float())
    torch.testing.assert_close(rejected[:, 0], -2 * idx.float())
    out = attach_reference(batch, shared)
    assert REF_CHOSEN_LOGPS not in batch  # the input batch is not modified
    assert out[REF_CHOSEN_LOGPS].shape == out[REF_REJECTED_LOGPS].shape == (4,)
    assert out[PROMPT_FEATURES].shape == (4, 4)
    torch.testing.assert_close(out[PROMPT_FEATURES][:, 0], idx.float())
    per_expert = compute_reference_logps(
        FakeScore(num_columns=3), preference_batches(DATA, 3), n, num_columns=3
    )
    assert attach_reference(batch, per_expert)[REF_CHOSEN_LOGPS].shape == (4, 3)
    with pytest.raises(DataError, match="out of range"):
        per_expert.lookup(torch.tensor([0, n]))


def test_table_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\[N, R\]"):
        ReferenceTable(torch.zeros(3, 1), torch.zeros(3, 2))
