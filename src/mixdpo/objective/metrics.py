"""What training logs for one batch, computed from an :class:`~mixdpo.objective.loss.ObjectiveOutput`.

Names follow TRL's ``DPOTrainer`` where the quantity exists there, so dashboards carry over:

- ``rewards/chosen``, ``rewards/rejected``: mean mixture reward r(x, y) = logsumexp_k(log w_k + r_k) of
  the chosen / rejected completion (with K = 1, TRL's beta * log-ratio).
- ``rewards/margins``, ``rewards/accuracies``: mean of r(x, y+) - r(x, y-) and of [r(x, y+) > r(x, y-)].
- ``logps/chosen``, ``logps/rejected``: responsibility-weighted sequence log-probs sum_k q_ik log pi_k.
- ``rewards/expert_{k}/{chosen,rejected,margins,accuracies}``: the same for expert k alone (0-based).
- ``em/log_likelihood``: mean log p_i; ``em/elbo``, ``em/expert_fit``, ``em/gate_fit``, ``em/entropy``:
  the ELBO and its terms at the responsibilities used; ``em/mixture_accuracy``: share of pairs with
  MBT preference probability sum_k w_ik sigmoid(D_ik) > 1/2; ``em/usage_{k}``: mean_i q_ik;
  ``em/max_responsibility``: mean_i max_k q_ik (1 = decided assignments).
- ``gate/weight_{k}``: mean_i w_ik; ``gate/entropy``: mean_i H(w_i).
- ``loss/expert``, ``loss/gate``, ``loss/regulariser``: the parts of the loss.
"""

from __future__ import annotations

import torch

from mixdpo.objective.loss import ObjectiveOutput
from mixdpo.objective.margins import mixture_reward
from mixdpo.objective.mstep import gate_entropy


@torch.no_grad()
def objective_metrics(out: ObjectiveOutput) -> dict[str, torch.Tensor]:
    """Batch metrics as detached 0-dim float tensors (the trainer averages them across steps/processes).

    Args:
        out: the output of :func:`~mixdpo.objective.loss.mix_dpo_objective` for a batch of B pairs, K experts.

    Returns:
        dict name -> 0-dim tensor; see the module docstring for the names.
    """
    log_w = out.log_weights.detach()
    q = out.q
    mix_chosen = mixture_reward(log_w, out.chosen_rewards)
    mix_rejected = mixture_reward(log_w, out.rejected_rewards)
    metrics: dict[str, torch.Tensor] = {
        "rewards/chosen": mix_chosen.mean(),
        "rewards/rejected": mix_rejected.mean(),
        "rewards/margins": (mix_chosen - mix_rejected).mean(),
        "rewards/accuracies": (mix_chosen > mix_rejected).float().mean(),
        "logps/chosen": (q * out.chosen_logps.float()).sum(-1).mean(),
        "logps/rejected": (q * out.rejected_logps.float()).sum(-1).mean(),
        "em/log_likelihood": out.log_likelihood.detach().mean(),
        "em/elbo": out.elbo.elbo.mean(),
        "em/expert_fit": out.elbo.expert_fit.mean(),
        "em/gate_fit": out.elbo.gate_fit.mean(),
        "em/entropy": out.elbo.entropy.mean(),
        "em/max_responsibility": q.max(dim=-1).values.mean(),
        "em/mixture_accuracy": ((log_w.exp() * torch.sigmoid(out.margins.detach())).sum(-1) > 0.5)
        .float()
        .mean(),
        "gate/entropy": gate_entropy(log_w),
        "loss/expert": out.loss.expert.detach(),
        "loss/gate": out.loss.gate.detach(),
        "loss/regulariser": out.loss.regulariser.detach(),
    }
    usage = q.mean(dim=0)
    weight = log_w.exp().mean(dim=0)
    for k in range(q.shape[-1]):
        chosen, rejected = out.chosen_rewards[:, k], out.rejected_rewards[:, k]
        metrics[f"rewards/expert_{k}/chosen"] = chosen.mean()
        metrics[f"rewards/expert_{k}/rejected"] = rejected.mean()
        metrics[f"rewards/expert_{k}/margins"] = (chosen - rejected).mean()
        metrics[f"rewards/expert_{k}/accuracies"] = (chosen > rejected).float().mean()
        metrics[f"em/usage_{k}"] = usage[k]
        metrics[f"gate/weight_{k}"] = weight[k]
    return metrics
