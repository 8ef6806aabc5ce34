"""Sequence log-probabilities of completions under a causal language model (DESIGN.md section 2).

For a sequence of N rows and T positions with completion mask m (batch contract, ``mixdpo.batch``):

    log pi(y | x) = sum_t m_t log p(input_ids[t] | input_ids[<t])        (average=False)
    mean form     = sum_t m_t log p(...) / sum_t m_t                       (average=True)

Token t is predicted by the logits at position t - 1, so only positions t - 1 whose next token is a
completion token are ever scored. Two equivalent paths compute it:

- the logits path takes the model's full ``[N, T, V]`` logits and reads them row by row;
- the hidden path takes the final hidden states ``[N, T, H]`` (after the final norm), keeps the M rows
  that predict a completion token and only then applies the output embedding (``lm_head``), so the
  vocabulary projection of prompt and padding positions is never computed (with long prompts, most of it).

Both score rows in chunks, in float32 (float64 inputs stay float64), as gather(logits) - logsumexp(logits):
neither materialises a second ``[N, T, V]`` tensor such as a full log_softmax.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import nn

from mixdpo.chunked_head import fusable_head, head_token_logps

# Rows x vocabulary elements scored per chunk (~256 MB in float32): bounds the float32 copy of the logits
# (and logsumexp's temporaries) however long the batch is.
_CHUNK_ELEMENTS = 1 << 26

PLAIN_LM_HEAD_MODEL_TYPES: set[str] = {
    "apertus", "arcee", "bloom", "codegen", "deepseek_v3", "ernie4_5", "exaone4", "falcon", "gemma",
    "glm", "glm4", "gpt2", "gpt_bigcode", "gpt_neox", "gpt_oss", "gptj", "helium", "llama", "ministral",
    "mistral", "mixtral", "nemotron", "olmo", "olmo2", "olmo3", "opt", "persimmon", "phi", "phi3",
    "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "seed_oss", "smollm3", "stablelm", "starcoder2",
}  # fmt: skip
"""``config.model_type`` values whose ``ForCausalLM.forward`` is exactly ``lm_head(decoder(...)[0])``.

Read from the transformers sources: Gemma 2/3 (``final_logit_softcapping``), Cohere (``logit_scale``),
Granite (``logits_scaling``), MiniCPM3 (hidden states scaled before the head), Falcon-H1 (multipliers)
and many others transform the logits or the hidden states, so the hidden path would be wrong for them;
any type not listed uses the full-logits path. Each listed type was checked with ``check_hidden_path`` on
a tiny random model (transformers 5.24): identical values. Add a type only after checking it the same way.
"""

# Config attributes that, when set, change logits after the head: a second guard for registered types.
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier")


def token_count(completion_mask: torch.Tensor) -> torch.Tensor:
    """Number of completion tokens per sequence: ``[N, T] -> [N]`` (int64), the denominator of average."""
    return completion_mask.long().sum(-1)


def split_chosen_rejected(logps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[2B, ...] -> ([B, ...], [B, ...])``: rows 0..B-1 chosen, rows B..2B-1 rejected (batch contract)."""
    if logps.shape[0] % 2:
        raise ValueError(f"expected 2B rows (chosen then rejected), got {logps.shape[0]}")
    half = logps.shape[0] // 2
    return logps[:half], logps[half:]


def position_ids_from_attention_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids ``[N, T]`` counting real tokens only: 0..L-1 over each row's tokens, wherever they sit.

    Right padding gives 0, 1, ..., L-1, L-1, ...; left padding 0, ..., 0, 1, ..., L-1. Padding positions
    get a harmless in-range value; they are masked out of attention and never scored.
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _completion_positions(
    input_ids: torch.Tensor, completion_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows (n) and positions (t) of completion tokens, their flat predictor rows n*T + t-1, and targets."""
    if input_ids.dim() != 2 or completion_mask.shape != input_ids.shape:
        raise ValueError(
            f"input_ids {tuple(input_ids.shape)} and completion_mask {tuple(completion_mask.shape)} must "
            "both have shape [N, T]"
        )
    mask = completion_mask.bool()
    if mask[:, 0].any():
        # Nothing predicts the first token; counting it would silently drop it from the sum.
        raise ValueError("completion_mask is 1 at position 0, which no token predicts; prepend a prompt/BOS")
    n_idx, t_idx = mask.nonzero(as_tuple=True)
    return n_idx, t_idx, n_idx * input_ids.shape[1] + t_idx - 1


def _score_rows(
    rows: torch.Tensor, project: Callable[[torch.Tensor], torch.Tensor], targets: torch.Tensor, vocab: int
) -> torch.Tensor:
    """log p(target | row) for M rows ``[M, D]`` that ``project`` maps to logits ``[m, V]``; float32 [M]."""
    step = max(1, _CHUNK_ELEMENTS // max(vocab, 1))
    out = []
    for start in range(0, rows.shape[0], step):
        logits = project(rows[start : start + step])
        if logits.dtype in (torch.float16, torch.bfloat16):  # float64 stays float64 (exact tests)
            logits = logits.float()
        tgt = targets[start : start + step, None]
        out.append(logits.gather(-1, tgt).squeeze(-1) - torch.logsumexp(logits, dim=-1))
    return torch.cat(out) if out else rows.new_zeros(0, dtype=torch.float32)


def _reduce(
    token_logps: torch.Tensor, n_idx: torch.Tensor, t_idx: torch.Tensor, shape: torch.Size, average: bool
) -> torch.Tensor:
    # Scatter into [N, T] and sum along T: deterministic, unlike index_add's atomics on GPU.
    logps = token_logps.new_zeros(shape).index_put((n_idx, t_idx), token_logps).sum(-1)
    if average:
        # Empty completions average to 0 rather than NaN; the data layer should not produce them.
        logps = logps / torch.bincount(n_idx, minlength=shape[0]).clamp(min=1)
    return logps


def completion_logps_from_logits(
    logits: torch.Tensor, input_ids: torch.Tensor, completion_mask: torch.Tensor, *, average: bool = False
) -> torch.Tensor:
    """Sum (or mean) over completion tokens of log p(input_ids[t] | <t), read from full logits.

    Args:
        logits: ``[N, T, V]`` next-token logits (position t - 1 predicts token t), any float dtype.
        input_ids: ``[N, T]`` token ids.
        completion_mask: ``[N, T]``, 1 on the completion tokens that count (never at position 0).
        average: divide each sum by the row's number of completion tokens.

    Returns:
        ``[N]`` float32 log-probabilities; differentiable w.r.t. ``logits``.
    """
    if logits.dim() != 3 or logits.shape[:2] != input_ids.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} must be [N, T, V] with [N, T] = {tuple(input_ids.shape)}"
        )
    n_idx, t_idx, rows = _completion_positions(input_ids, completion_mask)
    flat = logits.reshape(-1, logits.shape[-1])  # a view for contiguous logits: no copy
    vocab = logits.shape[-1]
    token_logps = _score_rows(rows, lambda r: flat[r], input_ids[n_idx, t_idx], vocab)
    return _reduce(token_logps, n_idx, t_idx, input_ids.shape, average)


def _vocab_size(lm_head: nn.Module) -> int:
    weight = getattr(lm_head, "weight", None)
    # Sharded (ZeRO-3/FSDP) weights can be empty placeholders; then guess a large vocabulary.
    return int(weight.shape[0]) if isinstance(weight, torch.Tensor) and weight.numel() > 0 else 1 << 17


def completion_logps_from_hidden(
    hidden: torch.Tensor,
    lm_head: Callable[[torch.Tensor], torch.Tensor],
    input_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    average: bool = False,
) -> torch.Tensor:
    """Same values as :func:`completion_logps_from_logits` with ``logits = lm_head(hidden)``, projecting
    only the M rows t - 1 that predict a completion token (M << N*T when prompts are long).

    Args:
        hidden: ``[N, T, H]`` final hidden states (after the model's final norm).
        lm_head: the output embedding, ``[m, H] -> [m, V]`` (``model.get_output_embeddings()``).
        input_ids, completion_mask, average: as in :func:`completion_logps_from_logits`.

    Returns:
        ``[N]`` float32 log-probabilities; differentiable w.r.t. ``hidden`` and the head's parameters.
    """
    if hidden.dim() != 3 or hidden.shape[:2] != input_ids.shape:
        raise ValueError(
            f"hidden {tuple(hidden.shape)} must be [N, T, H] with [N, T] = {tuple(input_ids.shape)}"
        )
    n_idx, t_idx, rows = _completion_positions(input_ids, completion_mask)
    selected = hidden.reshape(-1, hidden.shape[-1])[rows]  # [M, H]: select first, then project
    targets = input_ids[n_idx, t_idx]
    if fusable_head(lm_head):  # the same values without keeping [M, V] logits for backward
        token_logps = head_token_logps(selected, lm_head, targets, _CHUNK_ELEMENTS)
        return _reduce(token_logps, n_idx, t_idx, input_ids.shape, average)
    vocab = _vocab_size(lm_head) if isinstance(lm_head, nn.Module) else 1 << 17
    token_logps = _score_rows(selected, lm_head, targets, vocab)
    return _reduce(token_logps, n_idx, t_idx, input_ids.shape, average)


def _unwrap_peft(model: nn.Module) -> tuple[nn.Module, str | None]:
    """The transformers model under a PeftModel (LoRA layers are injected in place, so it runs them)."""
    if hasattr(model, "peft_config") and hasattr(model, "get_base_model"):
        config = getattr(model, "active_peft_config", None)
        if getattr(config, "is_prompt_learning", False):
            return model, "peft prompt learning adds virtual tokens in PeftModel.forward"
        return model.get_base_model(), None
    return model, None


def _distributed_wrapper(model: nn.Module) -> str | None:
    # Calling a submodule directly would bypass the wrapper's forward (DDP's reducer set-up, FSDP's
    # all-gather of the root unit's parameters, DeepSpeed's engine logic), so these use the full path.
    if isinstance(model, nn.parallel.DistributedDataParallel):
        return "DistributedDataParallel"
    if type(model).__name__ == "DeepSpeedEngine":
        return "DeepSpeedEngine"
    try:
        from torch.distributed.fsdp import FSDPModule, FullyShardedDataParallel
    except ImportError:  # torch built without distributed support
        return None
    if any(isinstance(m, (FullyShardedDataParallel, FSDPModule)) for m in model.modules()):
        return "FSDP"
    return None


def hidden_path_unsupported_reason(model: nn.Module) -> str | None:
    """Why :func:`sequence_logps` must use the full-logits path for ``model``, or None if it need not."""
    wrapper = _distributed_wrapper(model)
    if wrapper is not None:
        return f"model is wrapped in {wrapper}"
    base, reason = _unwrap_peft(model)
    if reason is not None:
        return reason
    config = getattr(base, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in PLAIN_LM_HEAD_MODEL_TYPES:
        return f"model_type {model_type!r} is not in PLAIN_LM_HEAD_MODEL_TYPES"
    for name in _LOGIT_TRANSFORMS:
        value = getattr(config, name, None)
        if value is not None and value != 1:
            return f"config.{name} = {value!r} transforms the logits"
    if not hasattr(base, "get_decoder") or base.get_output_embeddings() is None:
        return "model has no get_decoder() / get_output_embeddings()"
    if base.get_decoder() is base:
        return "get_decoder() returned the model itself"
    return None


def _passes_position_ids(model: nn.Module) -> bool:
    """Whether the model under any DDP / DeepSpeed / FSDP / peft wrappers takes ``position_ids``."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel) or type(model).__name__ in (
            "DeepSpeedEngine",
            "FullyShardedDataParallel",
        ):
            model = model.module
            continue
        inner, reason = _unwrap_peft(model)
        if reason is not None:
            return False  # peft drops them (with a warning) for prompt learning
        if inner is model:
            return "position_ids" in inspect.signature(model.forward).parameters
        model = inner


def sequence_logps(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    average: bool = False,
    project_only_completion: bool = True,
) -> torch.Tensor:
    """log pi(y | x) = sum_t m_t log p(y_t | x, y_<t) for every row, with one forward pass of ``model``.

    Args:
        model: any ``AutoModelForCausalLM`` (or a PeftModel around one), in train or eval mode.
        input_ids, attention_mask, completion_mask: ``[N, T]`` per ``mixdpo.batch``; left or right padding
            (explicit position ids are computed from ``attention_mask``).
        average: mean instead of sum over each row's completion tokens.
        project_only_completion: take the hidden path (decoder, then the output embedding on the M
            completion-predicting rows only) when :func:`hidden_path_unsupported_reason` allows it; else, or
            when False, the model's full ``[N, T, V]`` logits are computed.

    Returns:
        ``[N]`` float32 log-probabilities. Gradients flow to the model's parameters; wrap the call in
        ``torch.no_grad()`` for reference models.

    Wrappers: a LoRA PeftModel takes the hidden path (its adapters live inside the decoder and, if
    targeted, the head). Peft prompt learning (prompt / prefix tuning) and DDP / FSDP / DeepSpeed wrappers
    run their own forward on the full path; peft prompt learning ignores position ids, so pad on the right
    for it.
    """
    if attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask {tuple(attention_mask.shape)} != input_ids {tuple(input_ids.shape)}"
        )
    if (completion_mask.bool() & ~attention_mask.bool()).any():
        raise ValueError(
            "completion_mask is 1 on padding (attention_mask 0); completions must be real tokens"
        )
    if project_only_completion and hidden_path_unsupported_reason(model) is None:
        return _hidden_path_logps(model, input_ids, attention_mask, completion_mask, average)

    inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "use_cache": False}
    if _passes_position_ids(model):
        inputs["position_ids"] = position_ids_from_attention_mask(attention_mask)
    logits = model(**inputs).logits
    # Peft prompt tuning prepends virtual-token positions to the logits; the real ones are the last T.
    logits = logits[:, -input_ids.shape[1] :]
    return completion_logps_from_logits(logits, input_ids, completion_mask, average=average)


def _hidden_path_logps(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_mask: torch.Tensor,
    average: bool,
) -> torch.Tensor:
    base, _ = _unwrap_peft(model)
    decoder = base.get_decoder()
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "use_cache": False}
    if _passes_position_ids(decoder):
        inputs["position_ids"] = position_ids_from_attention_mask(attention_mask)
    hidden = decoder(**inputs)[0]  # last hidden state, after the final norm
    return completion_logps_from_hidden(
        hidden, base.get_output_embeddings(), input_ids, completion_mask, average=average
    )


@torch.no_grad()
def check_hidden_path(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    atol: float = 1e-4,
) -> float:
    """Largest |hidden path - full-logits path| on a batch, forcing the hidden path (put ``model`` in eval
    mode first so dropout does not differ); raises ``AssertionError`` above ``atol``. Use it to vet a
    model type before adding it to ``PLAIN_LM_HEAD_MODEL_TYPES``."""
    _, reason = _unwrap_peft(model)
    if reason is not None:
        raise ValueError(f"the hidden path cannot apply: {reason}")
    fast = _hidden_path_logps(model, input_ids, attention_mask, completion_mask, average=False)
    full = sequence_logps(model, input_ids, attention_mask, completion_mask, project_only_completion=False)
    diff = (fast - full).abs().max().item() if full.numel() else 0.0
    if diff > atol:
        raise AssertionError(f"hidden path differs from the model's logits by {diff:.3g} > {atol}")
    return diff
