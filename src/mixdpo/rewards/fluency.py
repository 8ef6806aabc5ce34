"""Fluency: the mean token log-probability of a text under a reference causal LM, in (-inf, 0]; higher =
more fluent (as the model sees it). Batched, no gradient, deterministic (eval mode)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mixdpo.logprobs import sequence_logps


@torch.no_grad()
def mean_token_logprob(model: Any, tokenizer: Any, texts: Sequence[str], batch_size: int = 16) -> list[float]:
    """(1/n) sum_t log p(x_t | x_<t) over each text's tokens after the first (BOS prepended when the
    tokenizer has one, so that the first token is scored too); empty texts score 0."""
    model.eval()
    bos = tokenizer.bos_token_id
    out: list[float] = []
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start : start + batch_size])
        encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in chunk]
        prefix = [bos] if bos is not None else []
        rows = [prefix + ids for ids in encoded]
        width = max(2, max(len(r) for r in rows))
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        attention = torch.zeros_like(ids)
        scored = torch.zeros_like(ids)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            attention[i, : len(row)] = 1
            scored[i, 1 : len(row)] = 1  # every token that has a predecessor
        device = next(model.parameters()).device
        logps = sequence_logps(model, ids.to(device), attention.to(device), scored.to(device), average=True)
        out += [float(v) if len(r) > 1 else 0.0 for v, r in zip(logps.tolist(), rows, strict=True)]
    return out


def fluency_reward(model: Any, tokenizer: Any):
    """A :class:`~mixdpo.rewards.base.RewardFunction` scoring texts with ``model``."""
    from mixdpo.rewards.base import RewardFunction

    return RewardFunction(
        "fluency",
        lambda texts: mean_token_logprob(model, tokenizer, texts),
        float("-inf"),
        0.0,
        "mean token log-prob under a reference LM",
    )
