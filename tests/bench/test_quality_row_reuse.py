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
    return {"case": case, "learning_rate": 3e-3, "eval": {"mixture_accuracy": 0.5}} | stored


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


def test_a_per_gate_warmup_drops_only_the_rows_of_mixtures_with_that_gate(tmp_path):
    plain = QualitySettings()
    assert "gate_estep_warmup_steps" not in plain.to_dict()
    own = replace(plain, gate_estep_warmup_steps={"prompt": 20})
    assert own.to_dict()["gate_estep_warmup_steps"] == {"prompt": 20}
    with pytest.raises(ConfigError, match="prompt: must be >= 0"):
        QualitySettings(gate_estep_warmup_steps={"prompt": -1})

    def warmup(task, method, variant="", settings=own):
        return training_options(QualityCase(task, method, "random:llama-1m", 0, variant), settings, 2)[
            "estep_warmup_steps"
        ]

    assert warmup("cross-domain", "moe-dpo") == 20  # the prompt gate
    assert warmup("multi-reward", "moe-dpo") == 20
    assert warmup("personas", "moe-dpo") == 10  # a user gate
    assert warmup("cross-domain", "mix-dpo") == 10  # the global gate
    assert warmup("cross-domain", "moe-dpo", settings=plain) == 10
    assert warmup("personas", "moe-dpo", "no symmetry breaking") == 0  # an ablation's own setting wins

    # Rows written before rows stored their warm-up: what their document's settings gave their case
    old = [_row("cross-domain", "moe-dpo"), _row("cross-domain", "dpo"), _row("personas", "moe-dpo"),
           _row("personas", "moe-dpo", variant="no symmetry breaking")]  # fmt: skip
    path = tmp_path / "quality.json"
    path.write_text(json.dumps({"settings": plain.to_dict(), "rows": old}))
    assert _previous_rows(path, plain) == old
    assert _previous_rows(path, own) == old[1:]  # only the prompt-gate mixture is measured again
    # a row re-measured with the new warm-up stores it, and is reused under the document's new settings
    new = _row("cross-domain", "moe-dpo", estep_warmup_steps=20)
    path.write_text(json.dumps({"settings": own.to_dict(), "rows": [new, *old[1:]]}))
    assert _previous_rows(path, own) == [new, *old[1:]]
    assert _previous_rows(path, plain) == old[1:]  # and dropped if the override is taken away again


def test_the_report_states_the_warmup_per_gate():
    own = replace(QualitySettings(), gate_estep_warmup_steps={"prompt": 20})
    document = {"tier": "full", "command": "c", "date": "2026-11-30", "wall_s": 60.0, "hardware": "cpu",
                "models": ["m"], "seeds": [0], "rows": [], "settings": own.to_dict()}  # fmt: skip
    assert "mixtures start with 10 hard E-step steps, 20 with a prompt gate)" in report_markdown(document)
    document["settings"] = QualitySettings().to_dict()
    assert "mixtures start with 10 hard E-step steps)" in report_markdown(document)
