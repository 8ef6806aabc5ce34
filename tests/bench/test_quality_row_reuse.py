"""Which measured rows a quality run reuses: all of them while the settings are the same; none when a shared
setting changes; only the affected cases' when a per-case setting (a model's learning rate, a gate's
warm-ups) is added or changed."""

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


PROMPT_WARMUPS = {"prompt": {"estep_warmup_steps": 20, "gate_warmup_steps": 10}}


def test_a_gate_warmup_drops_only_the_rows_of_mixtures_with_that_gate(tmp_path):
    plain = QualitySettings()
    assert "gate_warmups" not in plain.to_dict()
    own = replace(plain, gate_warmups=PROMPT_WARMUPS)
    assert own.to_dict()["gate_warmups"] == PROMPT_WARMUPS
    with pytest.raises(ConfigError, match="prompt: estep_warmup_steps must be >= 0"):
        QualitySettings(gate_warmups={"prompt": {"estep_warmup_steps": -1}})
    with pytest.raises(ConfigError, match="prompt: got 'warmup'; set estep_warmup_steps"):
        QualitySettings(gate_warmups={"prompt": {"warmup": 3}})

    def warmups(task, method, model=SMOL, variant="", settings=own):
        options = training_options(QualityCase(task, method, model, 0, variant), settings, groups=2)
        return options["estep_warmup_steps"], options.get("gate_warmup_steps")

    assert warmups("cross-domain", "moe-dpo") == (20, 10)  # a prompt gate, on every model
    assert warmups("cross-domain", "moe-dpo", model="random:llama-1m") == (20, 10)
    assert warmups("personas", "moe-dpo") == (10, None)  # a user gate: the library's default
    assert warmups("cross-domain", "mix-dpo") == (10, None)  # the global gate
    assert warmups("cross-domain", "moe-dpo", settings=plain) == (10, None)
    assert warmups("personas", "moe-dpo", variant="no symmetry breaking") == (0, None)  # the ablation's own

    # Rows written before rows stored their warm-ups: what their document's settings gave their case
    old = [_row("cross-domain", "moe-dpo", model=SMOL), _row("cross-domain", "moe-dpo"),
           _row("cross-domain", "dpo", model=SMOL), _row("personas", "moe-dpo", model=SMOL),
           _row("personas", "moe-dpo", model=SMOL, variant="no symmetry breaking")]  # fmt: skip
    path = tmp_path / "quality.json"
    path.write_text(json.dumps({"settings": plain.to_dict(), "rows": old}))
    assert _previous_rows(path, plain) == old
    assert _previous_rows(path, own) == old[2:]  # only the prompt-gate mixtures are measured again
    # a row re-measured with the new warm-ups stores them, and is reused under the document's new settings
    new = _row("cross-domain", "moe-dpo", model=SMOL, estep_warmup_steps=20, gate_warmup_steps=10)
    path.write_text(json.dumps({"settings": own.to_dict(), "rows": [new, *old[2:]]}))
    assert _previous_rows(path, own) == [new, *old[2:]]
    assert _previous_rows(path, plain) == old[2:]  # and dropped if the override is taken away again
    # a row of the per-model warm-up this replaced (20 steps, the gate held back for them) is dropped too
    before = {"settings": plain.to_dict() | {"model_estep_warmup_steps": {SMOL: {"prompt": 20}}}}
    path.write_text(json.dumps(before | {"rows": [old[0] | {"estep_warmup_steps": 20}, *old[2:]]}))
    assert _previous_rows(path, own) == old[2:]


def test_the_report_states_the_warmups():
    own = replace(QualitySettings(), gate_warmups=PROMPT_WARMUPS)
    document = {"tier": "full", "command": "c", "date": "2026-11-30", "wall_s": 60.0, "hardware": "cpu",
                "models": [SMOL], "seeds": [0], "rows": [], "settings": own.to_dict()}  # fmt: skip
    said = "mixtures start with 10 hard E-step steps, 20 with a prompt gate (the gate trained from step 10, "
    assert said + "ignored by the E-step until step 20))" in report_markdown(document)
    document["settings"] = QualitySettings().to_dict()  # no per-gate warm-up: the shared one alone
    assert "mixtures start with 10 hard E-step steps)" in report_markdown(document)
