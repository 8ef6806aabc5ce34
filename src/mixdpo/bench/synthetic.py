"""Token-level preference pairs for benchmarks: every library sees exactly the same token ids.

Text would not do: two tokenizers (or two tokenization pipelines over one tokenizer) can produce
sequences of different lengths from the same string, and a speed comparison must compare equal work.
So pairs are drawn directly as token ids: a prompt of ``prompt_tokens`` ids and two completions of
``completion_tokens`` ids each, uniform over the ordinary (non-special) vocabulary, seeded.
"""

from __future__ import annotations

from typing import Any

import torch


def ordinary_token_range(tokenizer: Any) -> tuple[int, int]:
    """``[low, high)`` of token ids above the tokenizer's special tokens (they sit at the start of the
    vocabulary for every tokenizer mixdpo ships or loads offline)."""
    high = len(tokenizer)
    specials = [i for i in getattr(tokenizer, "all_special_ids", []) if i is not None and i < high]
    low = max(specials, default=-1) + 1
    if low >= high // 2:  # specials at the end of the vocabulary: skip a safe margin instead
        low = min(32, high // 4)
    return low, high


def synthetic_pairs(
    num_pairs: int, prompt_tokens: int, completion_tokens: int, token_range: tuple[int, int], seed: int = 0
) -> list[dict[str, list[int]]]:
    """``num_pairs`` pairs ``{"prompt_ids", "chosen_ids", "rejected_ids"}`` of the given lengths.

    Each sequence (prompt + one completion) has ``prompt_tokens + completion_tokens`` tokens, so a batch
    of B pairs is 2B rows of exactly that length: no padding in any library.
    """
    if prompt_tokens < 1 or completion_tokens < 1:
        raise ValueError("prompt_tokens and completion_tokens must be >= 1")
    generator = torch.Generator().manual_seed(seed)
    low, high = token_range
    ids = torch.randint(low, high, (num_pairs, prompt_tokens + 2 * completion_tokens), generator=generator)
    pairs = []
    for row in ids.tolist():
        pairs.append(
            {
                "prompt_ids": row[:prompt_tokens],
                "chosen_ids": row[prompt_tokens : prompt_tokens + completion_tokens],
                "rejected_ids": row[prompt_tokens + completion_tokens :],
            }
        )
    return pairs
