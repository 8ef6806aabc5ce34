"""Train the K experts one after another inside a step: the activation memory of one expert, not K.

The objective depends on the experts only through their log-probs L = [N, K] (N = 2B sequences, chosen
then rejected). So a step can be split in two, exactly (the same idea as GradCache, Gao et al. 2021):

1. forward: each expert without autograd -> L (detached). The objective, the E-step and the gate run
   on L as usual; the loss's backward stops at L with G = dLoss/dL, [N, K].
2. backward: for k = 1..K, expert k alone runs forward with autograd, then backward with the
   vector-Jacobian seed G[:, k]; its activations are freed before expert k+1 starts.

By the chain rule, grad_theta_k Loss = sum_n G_nk d L_nk / d theta_k, which is what the joint step
computes, for every objective (``em`` with any E-step, ``marginal``). The cost is one extra forward of
all experts without autograd (about a third more compute than the joint step); the gain is that stored
activations no longer grow with K. With dropout the two passes draw different masks, so the gradient is
then not the joint step's; all presets here train without dropout.

Across processes: step 2 runs K backward passes nested inside the loss's backward, while DDP's reducer
expects one backward per forward. Under DDP the trainer runs such a step with DDP's hooks off and
averages the gradients itself (:func:`mixdpo.trainer.distributed.sequential_experts_gradient_sync`); FSDP
and DeepSpeed reduce from their own hooks, so there it is refused rather than left to chance.
"""

from __future__ import annotations

import torch

from mixdpo.experts.base import ExpertBackend


class _SequentialExpertLogps(torch.autograd.Function):
    """L = backend(...) without a graph; backward replays each expert with its column of the gradient."""

    @staticmethod
    def forward(ctx, anchor, backend, input_ids, attention_mask, completion_mask):
        ctx.backend = backend
        ctx.save_for_backward(input_ids, attention_mask, completion_mask)
        device = input_ids.device.type
        # Backward runs outside the caller's autocast region (e.g. accelerate's bf16 forward wrapper):
        # replay the experts under the same autocast state, as torch.utils.checkpoint does.
        ctx.autocast = (device, torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))
        with torch.no_grad():
            # One expert at a time here too: the transient activations, and the output embedding's logits
            # chunk, are those of N rows, not K N (the same FLOPs; the lora trunk below shared top
            # layers runs K times instead of once).
            columns = [
                backend.expert_logps(k, input_ids, attention_mask, completion_mask)
                for k in range(backend.num_experts)
            ]
            return torch.stack(columns, dim=-1)

    @staticmethod
    def backward(ctx, grad):
        input_ids, attention_mask, completion_mask = ctx.saved_tensors
        backend: ExpertBackend = ctx.backend
        device, enabled, dtype = ctx.autocast
        with torch.enable_grad(), torch.autocast(device, dtype=dtype, enabled=enabled):
            for k in range(backend.num_experts):
                logps = backend.expert_logps(k, input_ids, attention_mask, completion_mask)
                torch.autograd.backward(logps, grad[:, k].to(logps.dtype))
        return None, None, None, None, None


def sequential_expert_logps(
    backend: ExpertBackend,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_mask: torch.Tensor,
) -> torch.Tensor:
    """[N, K] log pi_k(y_n | x_n), equal to ``backend(...)``, whose backward runs the experts one at a time.

    Args:
        backend: a backend that defines :meth:`~mixdpo.experts.base.ExpertBackend.expert_logps`.
        input_ids, attention_mask, completion_mask: [N, T] as for ``backend.forward``.

    Returns:
        [N, K] log-probs that require grad (when autograd is on); their backward accumulates into each
        expert's parameters exactly what the backward of ``backend(...)`` would.
    """
    if not torch.is_grad_enabled():
        return backend(input_ids, attention_mask, completion_mask)
    # The Function has no differentiable tensor input (the expert parameters are reached in backward, not
    # through the graph); an empty leaf makes autograd call its backward at all.
    anchor = torch.empty(0, device=input_ids.device, requires_grad=True)
    return _SequentialExpertLogps.apply(anchor, backend, input_ids, attention_mask, completion_mask)
