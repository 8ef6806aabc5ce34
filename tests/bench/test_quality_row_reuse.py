"""Which measured rows a quality run reuses: all of them while the settings are the same; none when a shared
setting changes; only the affected cases' when a per-case setting (a model's learning rate, a gate's E-step
warm-up) is added or changed."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from mixdpo.bench.quality import training_options
from mixdpo.bench.quality_cases import QualityCase, QualitySettings
from mixdpo.bench.quality_suite import _previous_rows, report_markdown
from mixdpo.errors import ConfigError


def _row(task: str, method: str, model: str = "random:llama-1m", variant: str = "", **stored) -> dict:
    case = {"task": task, "method": method, "model": model, "seed": 0}
    case |= {"variant": variant} if variant else {}
    rate = 3e-3 if model.startswith("random:") else 2e-3  # the rates QualitySettings() gives
    return {"case": case, "learning_rate": rate, "eval": {"mixture_accuracy": 0.5}} | stored


def test_a_per_model_learning_rate_drops_only_that_models_rows(tmp_path):
    plain = QualitySettings()
    assert "model_learning_rates" not in plain.to_dict()  # documents written before it stay comparable
    own = replace(plain, model_learning_rates={"random:llama-20m": 5e-4})
    assert own.to_dict()["model_learning_rates"] == {"random:llama-20m": 5e-4}
    case = QualityCase("cross-domain", "dpo", "random:llama-20m", 0)
    assert training_options(case, own, groups=2)["learning_rate"] == 5e-4
    assert training_options(replace(case, model="random:llama-1m"), own, 2)["learning_rate"] == 3e-3
    assert training_options(replace(case, model="builtin:smollm2-135m"), own, 2)["learning_rate"] == 2e-3
    with pytest.raises(ConfigError, match="random:llama-20m: must be > 0"):
        QualitySettings(model_learning_rates={"random:llama-20m": 0.0})

    small = _row("personas", "dpo")
    wide = _row("personas", "dpo", model="random:llama-20m")  # trained at 3e-3, the rate the setting replaces
    path = tmp_path / "quality.json"
    path.write_text(json.dumps({"settings": plain.to_dict(), "rows": [small, wide]}))
    assert _previous_rows(path, plain) == [small, wide]
    assert _previous_rows(path, own) == [small]  # the 1m row is still valid; the 20m row is not
    assert _previous_rows(path, replace(own, max_steps=7)) == []  # a shared setting changed: nothing


SMOL = "builtin:smollm2-135m"


def test_a_per_model_gate_warmup_drops_only_the_rows_of_that_models_mixtures_with_that_gate(tmp_path):
    plain = QualitySettings()
    assert "model_estep_warmup_steps" not in plain.to_dict()
    own = replace(plain, model_estep_warmup_steps={SMOL: {"prompt": 20}})
    assert own.to_dict()["model_estep_warmup_steps"] == {SMOL: {"prompt": 20}}
    with pytest.raises(ConfigError, match="builtin:smollm2-135m prompt: must be >= 0"):
        QualitySettings(model_estep_warmup_steps={SMOL: {"prompt": -1}})

    def warmup(task, method, model=SMOL, variant="", settings=own):
        case = QualityCase(task, method, model, 0, variant)
        return training_options(case, settings, groups=2)["estep_warmup_steps"]

    assert warmup("cross-domain", "moe-dpo") == 20  # SmolLM2's prompt gate
    assert warmup("multi-reward", "moe-dpo") == 20
    assert warmup("cross-domain", "moe-dpo", model="random:llama-1m") == 10  # another model
    assert warmup("personas", "moe-dpo") == 10  # a user gate
    assert warmup("cross-domain", "mix-dpo") == 10  # the global gate
    assert warmup("cross-domain", "moe-dpo", settings=plain) == 10
    assert warmup("personas", "moe-dpo", variant="no symmetry breaking") == 0  # the ablation's own wins

    # Rows written before rows stored their warm-up: what their document's settings gave their case
    old = [_row("cross-domain", "moe-dpo", model=SMOL), _row("cross-domain", "moe-dpo"),
           _row("cross-domain", "dpo", model=SMOL), _row("personas", "moe-dpo", model=SMOL),
           _row("personas", "moe-dpo", model=SMOL, variant="no symmetry breaking")]  # fmt: skip
    path = tmp_path / "quality.json"
    path.write_text(json.dumps({"settings": plain.to_dict(), "rows": old}))
    assert _previous_rows(path, plain) == old
    assert _previous_rows(path, own) == old[1:]  # only SmolLM2's prompt-gate mixture is measured again
    # a row re-measured with the new warm-up stores it, and is reused under the document's new settings
    new = _row("cross-domain", "moe-dpo", model=SMOL, estep_warmup_steps=20)
    path.write_text(json.dumps({"settings": own.to_dict(), "rows": [new, *old[1:]]}))
    assert _previous_rows(path, own) == [new, *old[1:]]
    assert _previous_rows(path, plain) == old[1:]  # and dropped if the override is taken away again


def test_the_report_states_the_warmups_of_the_models_it_shows():
    own = replace(QualitySettings(), model_estep_warmup_steps={SMOL: {"prompt": 20}})
    document = {"tier": "full", "command": "c", "date": "2026-11-30", "wall_s": 60.0, "hardware": "cpu",
                "models": [SMOL], "seeds": [0], "rows": [], "settings": own.to_dict()}  # fmt: skip
    assert "mixtures start with 10 hard E-step steps, 20 for `builtin:smollm2-135m` with a prompt gate)" in (
        report_markdown(document)
    )
    document["models"] = ["random:llama-1m"]  # a model without rows: not said
    assert "mixtures start with 10 hard E-step steps)" in report_markdown(document)
