"""Experts created from one shared checkpoint specialise on a two-group task (symmetry breaking works),
and without any symmetry breaking they provably never separate.

Symmetry breaking here = the backend's seeded weight noise (default) + a hard first E-step (10 steps of
classification EM, then the exact posterior). Measured over seeds 0-5 for each backend: ARI 1.0 and mean
max responsibility >= 0.96 every time; with a soft E-step from the start, 30 steps often stayed undecided
(mean max responsibility ~0.55-0.7).

Task: group A prefers " good" over " bad" after any prompt, group B the reverse (a hidden label). A single
policy cannot satisfy both; a 2-expert mixture can, if EM separates its experts.
"""

from __future__ import annotations

import random

import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from helpers import encode_pairs
from mixdpo.objective import ObjectiveConfig, mix_dpo_objective
from mixdpo.policy import MixturePolicy, PolicyConfig

SUBJECTS = ["The film was", "This book is", "Our trip was", "The meal was"]


def two_group_rows(n: int = 64, seed: int = 0) -> list[tuple[str, str, str, int]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        prompt = rng.choice(SUBJECTS)
        rows.append((prompt, " good", " bad", 0) if i % 2 == 0 else (prompt, " bad", " good", 1))
    return rows


def train(
    policy: MixturePolicy, rows, *, steps: int, lr: float, hard_warmup: int, seed: int = 0, warmup="hard"
):
    """Stochastic EM: minibatch E-step then M-step; the first ``hard_warmup`` steps use hard responsibilities
    (``hard``: argmax, ``gumbel``: a sample from the posterior), then the exact posterior."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=lr)
    rng, gen = random.Random(seed), torch.Generator().manual_seed(seed)
    for step in range(steps):
        warm = step < hard_warmup
        config = ObjectiveConfig(
            beta=1.0, estep=warmup if warm else "soft", straight_through=warm and warmup == "gumbel"
        )
        chunk = rng.sample(rows, 16)
        batch = encode_pairs(policy.tokenizer, *zip(*[r[:3] for r in chunk], strict=True))
        out = policy(batch)
        result = mix_dpo_objective(
            out.chosen_logps, out.rejected_logps, out.ref_chosen_logps, out.ref_rejected_logps,
            out.gate_logits, config, generator=gen,
        )  # fmt: skip
        opt.zero_grad()
        result.loss.total.backward()
        opt.step()


def responsibilities(policy: MixturePolicy, rows) -> tuple[torch.Tensor, torch.Tensor]:
    policy.eval()
    batch = encode_pairs(policy.tokenizer, *zip(*[r[:3] for r in rows], strict=True))
    with torch.no_grad():
        out = policy(batch)
        result = mix_dpo_objective(
            out.chosen_logps, out.rejected_logps, out.ref_chosen_logps, out.ref_rejected_logps,
            out.gate_logits, ObjectiveConfig(beta=1.0),
        )  # fmt: skip
    return result.q, out.chosen_logps


BACKENDS = [
    ("lora", {"r": 4}, 3e-3),
    ("heads", {"num_expert_layers": 1}, 1e-3),
    ("independent", {}, 1e-3),
]


@pytest.mark.parametrize(("backend", "options", "lr"), BACKENDS)
def test_experts_from_one_checkpoint_specialise_on_the_hidden_groups(backend, options, lr):
    rows = two_group_rows()
    config = PolicyConfig(model="random:llama-tiny", num_experts=2, backend=backend, backend_options=options)
    policy = MixturePolicy.create(config)
    q0, _ = responsibilities(policy, rows)
    groups = [r[3] for r in rows]
    # Before training the experts are near-identical: every pair is a coin flip between them. (The
    # argmax alone already follows the groups, because any difference between two experts orders
    # " good" and " bad" one way or the other; decisiveness is what specialisation adds.)
    assert q0.max(-1).values.mean() < 0.6
    policy.train()
    train(policy, rows, steps=30, lr=lr, hard_warmup=10)
    q, _ = responsibilities(policy, rows)
    assert adjusted_rand_score(groups, q.argmax(-1).tolist()) >= 0.9
    assert q.max(-1).values.mean() > 0.9  # decided, not 50/50


@pytest.mark.parametrize(("backend", "options", "lr"), BACKENDS[1:])
def test_identical_copies_without_symmetry_breaking_never_separate(backend, options, lr):
    rows = two_group_rows()
    config = PolicyConfig(
        model="random:llama-tiny",
        num_experts=2,
        backend=backend,
        backend_options={**options, "init_noise": 0.0},
    )
    policy = MixturePolicy.create(config).train()
    train(policy, rows, steps=15, lr=lr, hard_warmup=0)  # exact E-step only: q = w throughout
    q, logps = responsibilities(policy, rows)
    assert torch.equal(logps[:, 0], logps[:, 1])  # still the same function, bit for bit
    torch.testing.assert_close(q, torch.full_like(q, 0.5))


def test_lora_experts_start_as_the_base_without_noise_so_q_equals_w():
    rows = two_group_rows()
    policy = MixturePolicy.create(
        PolicyConfig(model="random:llama-tiny", num_experts=2, backend_options={"init_noise": 0.0})
    )
    q, logps = responsibilities(policy, rows)
    assert torch.equal(logps[:, 0], logps[:, 1])
    torch.testing.assert_close(q, torch.full_like(q, 0.5))
