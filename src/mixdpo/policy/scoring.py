"""Scoring completions under a mixture policy: per-expert implicit rewards, gate weights, mixture reward.

r_k(x, y) = beta (log pi_k(y|x) - log pi_ref_k(y|x))        (defined up to a per-prompt constant)
r(x, y)   = logsumexp_k(log w_k(x, u) + r_k(x, y))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from mixdpo.batch import ATTENTION_MASK, COMPLETION_MASK, INPUT_IDS, PROMPT_ATTENTION_MASK, PROMPT_INPUT_IDS
from mixdpo.data import PreferenceCollator, PreferenceRecord, render_chat, tokenize_rows
from mixdpo.gating import GateInputs
from mixdpo.objective import implicit_rewards, mixture_reward

if TYPE_CHECKING:
    from mixdpo.policy.mixture_policy import MixturePolicy

Prompt = str | list[dict[str, str]]


@dataclass
class Scores:
    """Scores of B (prompt, completion) pairs under K experts.

    Attributes:
        rewards: [B, K] implicit rewards r_k(x, y).
        weights: [B, K] routing weights w_k(x, u).
        mixture_reward: [B] r(x, y).
        logps: [B, K] log pi_k(y|x); ref_logps: [B, R] log pi_ref(y|x).
    """

    rewards: torch.Tensor
    weights: torch.Tensor
    mixture_reward: torch.Tensor
    logps: torch.Tensor
    ref_logps: torch.Tensor


def _records(
    policy: MixturePolicy, prompts: Sequence[Prompt], completions: Sequence[str]
) -> list[PreferenceRecord]:
    records = []
    for prompt, completion in zip(prompts, completions, strict=True):
        if isinstance(prompt, list):
            reply = [{"role": "assistant", "content": completion}]
            text, rendered, _ = render_chat(prompt, reply, reply, policy.tokenizer)
            records.append(PreferenceRecord(text, rendered, rendered, is_chat=True))
        else:
            records.append(PreferenceRecord(prompt, completion, completion))
    return records


@torch.no_grad()
def score(
    policy: MixturePolicy,
    prompts: Sequence[Prompt],
    completions: Sequence[str],
    *,
    users: Sequence[str | None] | None = None,
    user_features: torch.Tensor | None = None,
    batch_size: int = 16,
) -> Scores:
    """Score each completion (tokenised exactly as training data is, EOS appended) under every expert.

    Args:
        policy: the mixture policy.
        prompts: plain prompts or chat conversations (rendered with the tokenizer's chat template).
        completions: one completion per prompt (for chat prompts: the assistant's reply text).
        users: user id per prompt for user gates; None / unknown ids use the learned fallback.
        user_features: [B, F] numeric user features, if the gate takes them.
        batch_size: pairs per forward pass.
    """
    if len(prompts) != len(completions):
        raise ValueError(f"got {len(prompts)} prompts but {len(completions)} completions")
    pairs = tokenize_rows(_records(policy, prompts, completions), policy.tokenizer).pairs
    collate = PreferenceCollator.from_tokenizer(policy.tokenizer, padding_side="right")
    logps, refs, weights = [], [], []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        b = len(chunk)
        batch = collate(chunk)
        # The collator stacks chosen then rejected rows; here both are the same completion.
        ids, mask, completion = (batch[key][:b] for key in (INPUT_IDS, ATTENTION_MASK, COMPLETION_MASK))
        logps.append(policy.backend(ids, mask, completion))
        refs.append(policy.backend.reference_logps(ids, mask, completion))
        features = None
        if policy.gate.needs_prompt_features:
            features = policy.backend.prompt_features(batch[PROMPT_INPUT_IDS], batch[PROMPT_ATTENTION_MASK])
        user_ids = policy.user_ids(list(users[start : start + b])) if users is not None else None
        feats = user_features[start : start + b] if user_features is not None else None
        weights.append(policy.routing_weights(GateInputs(b, features, user_ids, feats)))
    logp, ref, w = torch.cat(logps), torch.cat(refs), torch.cat(weights)
    rewards = implicit_rewards(logp, ref, policy.policy_config.beta)
    return Scores(rewards, w, mixture_reward(w.clamp(min=1e-30).log(), rewards), logp, ref)
