"""``evaluate_policy`` end to end on tiny random models: keys, shapes, and consistency with a hand-run
forward (K = 1 accuracy is DPO's mean[D > 0]; swapping chosen and rejected complements the accuracy)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.utils.data import DataLoader

from mixdpo.data import PreferenceCollator, PreferenceDataset, TokenizationSettings, build_preference_dataset
from mixdpo.evaluation import GROUP_KEYS, USER_KEYS, evaluate_policy
from mixdpo.evaluation.evaluate import BASELINE_KEYS
from mixdpo.objective import expert_margins
from mixdpo.policy import MixturePolicy, PolicyConfig
from mixdpo.reference import compute_reference_logps

ROWS = [
    {
        "prompt": f"Question {i}: what is {i} plus one?",
        "chosen": " short" if i % 2 else " a long and winding answer about numbers",
        "rejected": " a much longer answer here" if i % 2 else " no",
        "user_id": f"u{i % 4}",
        "group": "concise" if i % 2 else "verbose",
    }
    for i in range(10)
]
BETA = 0.25  # not the default, to show evaluation reads the policy's beta
USERS = ["u3", "u1", "u0", "u2"]  # policy table order differs from sorted order on purpose
RESULT_KEYS = {
    "num_pairs",
    "num_experts",
    "mixture_accuracy",
    "mixture_log_likelihood",
    "reward_accuracy",
    "per_expert_accuracy",
    "expert_usage",
    "gate_weights",
    "baseline",
    *GROUP_KEYS,
    *USER_KEYS,
}


def flatten(value, prefix: str = "") -> dict[str, float]:
    """{"a/b/0": number} of a nested result, for approximate comparison (None entries left out)."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in flatten(item, f"{prefix}{key}/").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in flatten(item, f"{prefix}{i}/").items()}
    return {} if value is None else {prefix: value}


def make_policy(k: int, gate: str, backend: str = "lora", **kwargs) -> MixturePolicy:
    config = PolicyConfig(model="random:llama-tiny", num_experts=k, backend=backend, gate=gate, **kwargs)
    return MixturePolicy.create(config, users=USERS if "user" in gate else ())


def dataset_of(policy: MixturePolicy, rows=ROWS) -> PreferenceDataset:
    dataset, _ = build_preference_dataset(rows, policy.tokenizer, TokenizationSettings(max_length=64))
    return dataset


def swapped(dataset: PreferenceDataset) -> PreferenceDataset:
    pairs = [{**p, "chosen_ids": p["rejected_ids"], "rejected_ids": p["chosen_ids"]} for p in dataset.pairs]
    return PreferenceDataset(pairs, dataset.settings)


@pytest.fixture(scope="module")
def mixture() -> MixturePolicy:
    return make_policy(2, "user")


@pytest.fixture(scope="module")
def dpo() -> MixturePolicy:
    return make_policy(1, "global", beta=BETA)


@pytest.fixture(scope="module")
def data(mixture) -> PreferenceDataset:
    return dataset_of(mixture)


def test_result_keys_shapes_and_json(mixture, data):
    result = evaluate_policy(mixture, data, batch_size=4)
    assert set(result) == RESULT_KEYS
    assert result["num_pairs"] == len(ROWS)
    assert result["num_experts"] == 2
    assert len(result["per_expert_accuracy"]) == len(result["expert_usage"]) == 2
    assert sum(result["expert_usage"]) == pytest.approx(1.0)
    assert sum(result["gate_weights"]) == pytest.approx(1.0)
    assert set(result["per_group_accuracy"]) == {"concise", "verbose"}
    assert set(result["gate_weights_by_user"]) == {"u0", "u1", "u2", "u3"}
    assert result["baseline"] is None
    assert 0.0 <= result["mixture_accuracy"] <= 1.0
    assert result["mixture_log_likelihood"] < 0
    json.loads(json.dumps(result, allow_nan=False))


def test_k1_accuracy_is_dpo_accuracy_of_a_hand_run_forward(dpo, data):
    loader = DataLoader(data, batch_size=3, collate_fn=PreferenceCollator.from_tokenizer(dpo.tokenizer))
    with torch.no_grad():
        outs = [dpo(batch) for batch in loader]
    margins = torch.cat(
        [
            expert_margins(o.chosen_logps, o.rejected_logps, o.ref_chosen_logps, o.ref_rejected_logps, BETA)
            for o in outs
        ]
    )[:, 0]
    assert (margins != 0).all()  # the LoRA init noise makes the policy differ from its reference
    result = evaluate_policy(dpo, data, batch_size=4)
    expected = (margins > 0).double().mean().item()
    assert result["mixture_accuracy"] == pytest.approx(expected)
    assert result["reward_accuracy"] == pytest.approx(expected)
    assert result["per_expert_accuracy"] == pytest.approx([expected])
    assert result["mixture_log_likelihood"] == pytest.approx(
        torch.nn.functional.logsigmoid(margins.double()).mean().item(), rel=1e-4
    )
    assert result["expert_usage"] == [1.0]
    assert result["ari"] == 0.0  # one cluster, two groups
    groups = ["concise" if i % 2 else "verbose" for i in range(len(ROWS))]
    for g in ("concise", "verbose"):
        idx = [i for i in range(len(ROWS)) if groups[i] == g]
        assert result["per_group_accuracy"][g] == pytest.approx((margins[idx] > 0).double().mean().item())


def test_swapping_chosen_and_rejected_complements_the_accuracy(mixture, data):
    result = evaluate_policy(mixture, data, batch_size=4)
    flipped = evaluate_policy(mixture, swapped(data), batch_size=4)
    assert flipped["mixture_accuracy"] == pytest.approx(1 - result["mixture_accuracy"])
    assert flipped["per_expert_accuracy"] == pytest.approx([1 - a for a in result["per_expert_accuracy"]])
    for g, acc in result["per_group_accuracy"].items():
        assert flipped["per_group_accuracy"][g] == pytest.approx(1 - acc)


def test_users_are_routed_through_the_policys_own_table(mixture):
    rows = [*ROWS[:4], {**ROWS[0], "user_id": "stranger"}]
    data = dataset_of(mixture, rows)
    table = mixture.gate.table.weight
    saved = table.detach().clone()
    try:
        with torch.no_grad():
            table.zero_()
            table[USERS.index("u0")] = torch.tensor([2.0, 0.0])
            table[mixture.gate.fallback_index] = torch.tensor([0.0, 1.0])
        result = evaluate_policy(mixture, data)
    finally:
        with torch.no_grad():
            table.copy_(saved)
    by_user = result["gate_weights_by_user"]
    assert by_user["u0"] == pytest.approx(torch.softmax(torch.tensor([2.0, 0.0]), 0).tolist())
    assert by_user["u1"] == pytest.approx([0.5, 0.5])
    assert by_user["stranger"] == pytest.approx(torch.softmax(torch.tensor([0.0, 1.0]), 0).tolist())


def test_modes_are_restored_module_by_module_and_evaluation_is_deterministic(mixture, data):
    mixture.train()  # user dropout would make routing random if evaluation ran in training mode
    mixture.backend.eval()  # a submodule in eval mode inside a training policy stays so
    try:
        first = evaluate_policy(mixture, data, batch_size=3)
        assert mixture.training
        assert mixture.gate.training
        assert not mixture.backend.training
        second = evaluate_policy(mixture, data, batch_size=5)
    finally:
        mixture.eval()
    assert flatten(first) == pytest.approx(flatten(second), rel=1e-5, abs=1e-7)
    assert first["ari"] is not None


def test_precomputed_references_are_used_instead_of_a_reference_forward():
    policy = make_policy(2, "prompt")
    data = dataset_of(policy)
    loader = DataLoader(data, batch_size=4, collate_fn=PreferenceCollator.from_tokenizer(policy.tokenizer))
    table = compute_reference_logps(
        policy.reference_score_fn(), loader, len(data), num_columns=policy.backend.num_reference_columns
    )
    live = evaluate_policy(policy, data)
    calls = []
    original = policy.backend.reference_logps
    policy.backend.reference_logps = lambda *a, **kw: calls.append(1) or original(*a, **kw)
    cached = evaluate_policy(policy, data, reference_table=table)
    assert calls == []
    assert cached["mixture_accuracy"] == live["mixture_accuracy"]
    assert cached["mixture_log_likelihood"] == pytest.approx(live["mixture_log_likelihood"], rel=1e-5)
    assert cached["gate_weights"] == pytest.approx(live["gate_weights"], rel=1e-5)
    with pytest.raises(ValueError, match="reference table has"):
        evaluate_policy(policy, PreferenceDataset(data.pairs[:3], data.settings), reference_table=table)


def test_baseline_is_scored_the_same_way(mixture, dpo, data):
    result = evaluate_policy(mixture, data, baseline=dpo)
    alone = evaluate_policy(dpo, data)
    assert set(result["baseline"]) == set(BASELINE_KEYS)
    assert result["baseline"] == {key: pytest.approx(alone[key]) for key in BASELINE_KEYS}
    assert result["baseline"]["num_experts"] == 1


@pytest.mark.parametrize(
    ("backend", "gate"), [("lora", "global"), ("heads", "prompt+user"), ("independent", "user")]
)
def test_data_without_groups_or_users(backend, gate):
    policy = make_policy(2, gate, backend)
    rows = [{k: v for k, v in row.items() if k not in ("user_id", "group")} for row in ROWS[:5]]
    result = evaluate_policy(policy, dataset_of(policy, rows))
    for key in (*GROUP_KEYS, *USER_KEYS):
        assert result[key] is None, key
    assert result["num_pairs"] == 5
    assert math.isfinite(result["mixture_log_likelihood"])
    assert sum(result["gate_weights"]) == pytest.approx(1.0)
