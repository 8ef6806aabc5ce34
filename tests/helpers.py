"""Small builders shared by model-level tests (kept independent of the data pipeline on purpose)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def encode_pairs(
    tokenizer,
    prompts: Sequence[str],
    chosen: Sequence[str],
    rejected: Sequence[str],
    *,
    padding_side: str = "right",
) -> dict[str, torch.Tensor]:
    """A batch per ``mixdpo.batch``: rows 0..B-1 prompt+chosen, B..2B-1 prompt+rejected (+EOS)."""
    seqs, masks = [], []
    for completions in (chosen, rejected):
        for prompt, completion in zip(prompts, completions, strict=True):
            p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            c = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            seqs.append(p + c)
            masks.append([0] * len(p) + [1] * len(c))
    batch = _pad(seqs, tokenizer.pad_token_id, padding_side, masks)
    prompt_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    prompt = _pad(prompt_ids, tokenizer.pad_token_id, padding_side)
    batch["prompt_input_ids"] = prompt["input_ids"]
    batch["prompt_attention_mask"] = prompt["attention_mask"]
    return batch


def _pad(seqs, pad_id, side, masks=None) -> dict[str, torch.Tensor]:
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attention = torch.zeros_like(ids)
    completion = torch.zeros_like(ids)
    for i, s in enumerate(seqs):
        span = slice(0, len(s)) if side == "right" else slice(width - len(s), width)
        ids[i, span] = torch.tensor(s)
        attention[i, span] = 1
        if masks is not None:
            completion[i, span] = torch.tensor(masks[i])
    out = {"input_ids": ids, "attention_mask": attention}
    if masks is not None:
        out["completion_mask"] = completion
    return out


PROMPTS = ["The movie was", "Tell me about the book", "hi"]
CHOSEN = [" wonderful and moving", " it is long", " hello friend"]
REJECTED = [" bad", " no", " go away now please"]
