"""Preference batches with example_index, and cheap fake score functions, for the reference tests."""

from __future__ import annotations

import random

import torch

from logprobs.lp_testlib import make_batch, random_pairs
from mixdpo.batch import EXAMPLE_INDEX


def preference_data(n: int, seed: int = 0) -> list[tuple[list[int], list[int], list[int]]]:
    """n (prompt, chosen completion, rejected completion) token lists."""
    chosen, rejected = random_pairs(n, seed), random_pairs(n, seed + 1000)
    return [(p, c, r[1]) for (p, c), r in zip(chosen, rejected, strict=True)]


def preference_batches(
    data, batch_size: int, *, order_seed: int | None = 0, side: str = "left"
) -> list[dict]:
    """Batches per mixdpo.batch (rows 0..B-1 chosen, B..2B-1 rejected), examples in a shuffled order."""
    order = list(range(len(data)))
    if order_seed is not None:
        random.Random(order_seed).shuffle(order)
    batches = []
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        pairs = [(data[i][0], data[i][1]) for i in idx] + [(data[i][0], data[i][2]) for i in idx]
        ids, att, comp = make_batch(pairs, side=side)
        batches.append(
            {
                "input_ids": ids,
                "attention_mask": att,
                "completion_mask": comp,
                EXAMPLE_INDEX: torch.tensor(idx),
            }
        )
    return batches


class FakeScore:
    """score_fn whose values are a function of example_index only; counts calls, can fail on call n."""

    def __init__(self, num_columns: int = 1, features: int = 0, fail_at: int | None = None):
        self.num_columns, self.features, self.fail_at, self.calls = num_columns, features, fail_at, 0

    def __call__(self, batch):
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise RuntimeError("reference model crashed")
        idx = batch[EXAMPLE_INDEX].float()[:, None]
        cols = torch.arange(self.num_columns).float()[None, :]
        out = (-idx - cols, -2 * idx - cols)
        if self.features:
            out = (*out, idx.expand(-1, self.features) + torch.arange(self.features))
        return out
