"""Tiny random causal LMs, padded batches and an independent token-by-token scorer for the log-prob tests.

Imported by tests/logprobs and tests/reference as ``logprobs.lp_testlib`` (``tests`` is on sys.path).
"""

from __future__ import annotations

import random

import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

VOCAB = 300
PAD = 0


def tiny_gpt2(seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=VOCAB, n_layer=2, n_embd=64, n_head=4, n_positions=128, bos_token_id=1, eos_token_id=2
    )
    return GPT2LMHeadModel(config).float().eval()


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    return LlamaForCausalLM(config).float().eval()


MODELS = {"gpt2": tiny_gpt2, "llama": tiny_llama}


def random_pairs(n: int, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """n (prompt, completion) token lists of varied lengths; ids avoid PAD so padding is unambiguous."""
    rng = random.Random(seed)
    return [
        (
            [rng.randrange(3, VOCAB) for _ in range(rng.randint(1, 7))],
            [rng.randrange(3, VOCAB) for _ in range(rng.randint(1, 6))],
        )
        for _ in range(n)
    ]


def make_batch(
    pairs: list[tuple[list[int], list[int]]], side: str = "right", pad_id: int = PAD, extra_pad: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """input_ids, attention_mask, completion_mask [N, T] for the pairs, padded on ``side``."""
    width = max(len(p) + len(c) for p, c in pairs) + extra_pad
    ids, att, comp = [], [], []
    for prompt, completion in pairs:
        seq = prompt + completion
        pad = width - len(seq)
        row_att = [1] * len(seq)
        row_comp = [0] * len(prompt) + [1] * len(completion)
        if side == "right":
            ids.append(seq + [pad_id] * pad)
            att.append(row_att + [0] * pad)
            comp.append(row_comp + [0] * pad)
        else:
            ids.append([pad_id] * pad + seq)
            att.append([0] * pad + row_att)
            comp.append([0] * pad + row_comp)
    return torch.tensor(ids), torch.tensor(att), torch.tensor(comp)


@torch.no_grad()
def token_by_token(model: torch.nn.Module, pairs: list[tuple[list[int], list[int]]]) -> torch.Tensor:
    """[N] float64: for each completion token, the model on its un-padded prefix alone, no masks."""
    out = []
    for prompt, completion in pairs:
        seq, total = prompt + completion, 0.0
        for j in range(len(prompt), len(seq)):
            logits = model(input_ids=torch.tensor([seq[:j]])).logits[0, -1].double()
            total += logits.log_softmax(-1)[seq[j]].item()
        out.append(total)
    return torch.tensor(out, dtype=torch.float64)
