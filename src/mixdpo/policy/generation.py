"""Generation from a mixture policy, with a choice of routing.

Routing (``routing=``):

- ``sample`` — the mixture policy itself: per prompt draw k ~ w(x, u) once, then decode the whole
  response with expert k, so pi(y | x, u) = sum_k w_k(x, u) pi_k(y | x).
- ``top1`` — decode with the expert of largest weight, k = argmax_k w_k(x, u).
- ``expert:K`` — decode with expert K (0-based) for every prompt; ``reference`` decodes with the reference.
- ``token-mixture`` — at every step sample from the mixture of next-token distributions,
  p(y_t | y_<t) = sum_k w_k p_k(y_t | y_<t), with w fixed at the prompt. This is a *different*
  distribution from ``sample``: the sequence-level mixture's implied next-token weights are posteriors
  w_k prod_{s<t} p_k(y_s) / Z that sharpen onto the expert that wrote the prefix, while token-level mixing
  keeps blending experts at every token (it can produce text no single expert would write).

``sample``/``top1``/``expert`` run transformers' own ``generate`` (sampling settings pass through);
``token-mixture`` runs a KV-cached decoding loop over all experts with transformers' logits warpers.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from transformers import LlamaForCausalLM, LogitsProcessorList
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from mixdpo.errors import ConfigError
from mixdpo.experts import LoraExperts
from mixdpo.gating import GateInputs
from mixdpo.logprobs import position_ids_from_attention_mask

if TYPE_CHECKING:
    from mixdpo.policy.mixture_policy import MixturePolicy

Prompt = str | list[dict[str, str]]
ROUTINGS = ("sample", "top1", "token-mixture", "reference", "expert:K")
# transformers 5 renamed the KV-cache argument and output field from past_key_values to cache.
_CACHE_ARG = (
    "cache" if "cache" in inspect.signature(LlamaForCausalLM.forward).parameters else "past_key_values"
)


@dataclass
class Generation:
    """Generated completions and how they were routed.

    Attributes:
        texts: decoded completions (prompt excluded, special tokens skipped).
        experts: expert index per prompt (None for ``token-mixture`` / ``reference``).
        weights: [B, K] routing weights w(x, u) the gate gave each prompt.
        token_ids: generated token ids per prompt (without padding).
    """

    texts: list[str]
    experts: list[int | None]
    weights: torch.Tensor
    token_ids: list[list[int]]


def parse_routing(routing: str, num_experts: int) -> tuple[str, int | None]:
    """``"expert:2"`` -> ("expert", 2); other routings -> (routing, None). Raises ConfigError if invalid."""
    if routing.startswith("expert:"):
        try:
            k = int(routing.split(":", 1)[1])
        except ValueError:
            k = -1
        if not 0 <= k < num_experts:
            raise ConfigError(
                "routing", f"{routing!r}: the expert must be an integer in [0, {num_experts - 1}]"
            )
        return "expert", k
    if routing not in ROUTINGS:
        raise ConfigError("routing", f"got {routing!r}; choose one of {', '.join(ROUTINGS)} (K is 0-based)")
    return routing, None


def draw_experts(
    weights: torch.Tensor, routing: str, generator: torch.Generator | None = None
) -> list[int | None]:
    """One expert per row of ``weights`` [B, K]: a draw from w (``sample``), its argmax (``top1``), a fixed
    expert (``expert:K``), or None (``token-mixture`` / ``reference``)."""
    kind, fixed = parse_routing(routing, weights.shape[-1])
    if kind == "sample":
        return torch.multinomial(weights.float().cpu(), 1, generator=generator)[:, 0].tolist()
    if kind == "top1":
        return weights.argmax(-1).tolist()
    if kind == "expert":
        return [fixed] * weights.shape[0]
    return [None] * weights.shape[0]


def _encode_prompts(policy: MixturePolicy, prompts: Sequence[Prompt]) -> dict[str, torch.Tensor]:
    tok = policy.tokenizer
    texts = [
        tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True) if isinstance(p, list) else p
        for p in prompts
    ]
    side = tok.padding_side
    tok.padding_side = "left"  # decoder-only generation continues from the last real token
    try:
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tok.padding_side = side
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def _processors(
    temperature: float, top_k: int, top_p: float, repetition_penalty: float
) -> LogitsProcessorList:
    procs = LogitsProcessorList()
    if repetition_penalty != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(repetition_penalty))
    if temperature != 1.0:
        procs.append(TemperatureLogitsWarper(temperature))
    if top_k > 0:
        procs.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        procs.append(TopPLogitsWarper(top_p))
    return procs


def _eos_ids(policy: MixturePolicy, model: torch.nn.Module) -> set[int]:
    eos = (
        getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        or policy.tokenizer.eos_token_id
    )
    return set(eos if isinstance(eos, list) else [eos])


@torch.no_grad()
def _token_mixture(
    policy: MixturePolicy,
    enc: dict[str, torch.Tensor],
    weights: torch.Tensor,
    *,
    max_new_tokens: int,
    do_sample: bool,
    processors: LogitsProcessorList,
) -> torch.Tensor:
    """[B, new] tokens sampled from sum_k w_k p_k(. | prefix), one KV cache per expert."""
    backend = policy.backend
    ids, mask = enc["input_ids"], enc["attention_mask"]
    active = [k for k in range(weights.shape[-1]) if bool((weights[:, k] > 0).any())]
    log_w = weights[:, active].float().clamp(min=1e-30).log()
    caches: dict[int, Any] = {}
    pad = policy.tokenizer.pad_token_id
    finished = torch.zeros(ids.shape[0], dtype=torch.bool)
    step_ids, out = ids, []
    with backend.use_expert(active[0]) as first:
        eos_ids = torch.tensor(sorted(_eos_ids(policy, first)))
    for _ in range(max_new_tokens):
        positions = position_ids_from_attention_mask(mask)[:, -step_ids.shape[1] :]
        logps = []
        for k in active:
            with backend.use_expert(k) as model:
                result = model(
                    input_ids=step_ids,
                    attention_mask=mask,
                    position_ids=positions,
                    **{_CACHE_ARG: caches.get(k)},
                    use_cache=True,
                )
            caches[k] = getattr(result, _CACHE_ARG)
            logps.append(torch.log_softmax(result.logits[:, -1].float(), dim=-1))
        mixed = torch.logsumexp(log_w[:, :, None] + torch.stack(logps, dim=1), dim=1)
        scores = processors(torch.cat([ids, *out], dim=1) if out else ids, mixed)
        nxt = torch.multinomial(torch.softmax(scores, -1), 1)[:, 0] if do_sample else scores.argmax(-1)
        nxt = torch.where(finished, torch.full_like(nxt, pad), nxt)
        out.append(nxt[:, None])
        # Rows that had already finished feed padding from now on; the EOS token itself is attended.
        mask = torch.cat([mask, (~finished).long()[:, None]], dim=1)
        finished |= torch.isin(nxt, eos_ids)
        step_ids = nxt[:, None]
        if finished.all():
            break
    return torch.cat(out, dim=1) if out else ids.new_zeros(ids.shape[0], 0)


def _trim(tokens: torch.Tensor, eos: set[int], pad: int | None) -> list[list[int]]:
    result = []
    for row in tokens.tolist():
        kept = []
        for t in row:
            if t in eos:
                break
            kept.append(t)
        result.append([t for t in kept if t != pad] if pad is not None and pad not in eos else kept)
    return result


@torch.no_grad()
def generate(
    policy: MixturePolicy,
    prompts: Sequence[Prompt],
    *,
    users: Sequence[str | None] | None = None,
    user_features: torch.Tensor | None = None,
    routing: str = "sample",
    max_new_tokens: int = 64,
    do_sample: bool = True,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    repetition_penalty: float = 1.0,
    seed: int | None = None,
    **generate_kwargs: Any,
) -> Generation:
    """Generate one completion per prompt from the mixture (see the module docstring for ``routing``).

    Args:
        policy: the mixture policy.
        prompts: plain strings, or chat conversations (lists of {"role", "content"}) rendered with the
            tokenizer's chat template and a generation prompt.
        users: user id per prompt for user gates (None / unknown ids use the learned fallback).
        user_features: [B, F] numeric user features, if the gate takes them.
        routing: ``sample``, ``top1``, ``expert:K``, ``token-mixture`` or ``reference``.
        max_new_tokens, do_sample, temperature, top_k, top_p, repetition_penalty: sampling settings, passed
            to transformers' ``generate`` (and applied with its logits warpers for ``token-mixture``).
        seed: makes expert draws and sampling reproducible (the global RNG state is restored afterwards).
        generate_kwargs: anything else transformers' ``generate`` accepts.
    """
    kind, _ = parse_routing(routing, policy.num_experts)
    enc = _encode_prompts(policy, prompts)
    b = enc["input_ids"].shape[0]
    features = None
    if policy.gate.needs_prompt_features:
        features = policy.backend.prompt_features(enc["input_ids"], enc["attention_mask"])
    user_ids = policy.user_ids(list(users)) if users is not None else None
    weights = policy.routing_weights(GateInputs(b, features, user_ids, user_features))
    with torch.random.fork_rng(devices=[]):
        gen = None
        if seed is not None:
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(seed)
        experts = draw_experts(weights, routing, gen)
        pad = policy.tokenizer.pad_token_id
        settings = {"max_new_tokens": max_new_tokens, "do_sample": do_sample, "pad_token_id": pad}
        if do_sample:
            settings |= {"temperature": temperature, "top_k": top_k, "top_p": top_p}
        if repetition_penalty != 1.0:
            settings["repetition_penalty"] = repetition_penalty
        new_tokens = torch.full((b, 0), pad or 0, dtype=torch.long)
        if kind == "token-mixture":
            procs = (
                _processors(temperature, top_k, top_p, repetition_penalty)
                if do_sample
                else LogitsProcessorList()
            )
            new_tokens = _token_mixture(
                policy, enc, weights, max_new_tokens=max_new_tokens, do_sample=do_sample, processors=procs
            )
            with policy.backend.use_expert(0) as model:
                eos = _eos_ids(policy, model)
        elif isinstance(policy.backend, LoraExperts) and kind != "reference":
            # One generate call for all prompts: each row runs its own adapter.
            with policy.backend.routed_rows([int(k) for k in experts]) as model:  # type: ignore[arg-type]
                full = model.generate(**enc, **settings, **generate_kwargs)
                eos = _eos_ids(policy, model)
            new_tokens = full[:, enc["input_ids"].shape[1] :]
        else:
            groups: dict[int | None, list[int]] = {}
            for i, k in enumerate(experts):
                groups.setdefault(k, []).append(i)
            rows: dict[int, torch.Tensor] = {}
            for k, idx in groups.items():
                with policy.backend.use_expert(k) as model:
                    sub = {key: value[idx] for key, value in enc.items()}
                    full = model.generate(**sub, **settings, **generate_kwargs)
                    eos = _eos_ids(policy, model)
                for j, i in enumerate(idx):
                    rows[i] = full[j, enc["input_ids"].shape[1] :]
            width = max(r.shape[0] for r in rows.values())
            new_tokens = torch.full((b, width), pad if pad is not None else 0, dtype=torch.long)
            for i, r in rows.items():
                new_tokens[i, : r.shape[0]] = r
    token_ids = _trim(new_tokens, eos, pad)
    texts = policy.tokenizer.batch_decode(token_ids, skip_special_tokens=True)
    return Generation(texts=texts, experts=experts, weights=weights, token_ids=token_ids)
