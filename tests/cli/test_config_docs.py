"""docs/config.md is generated from MixDPOConfig's help text and must stay in step with it."""

from __future__ import annotations

from pathlib import Path

from mixdpo.cli.config_help import option_rows, options_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"


def test_config_reference_is_up_to_date():
    assert DOC.read_text().strip() == options_markdown().strip(), (
        "regenerate it: python -m mixdpo.cli.config_help > docs/config.md"
    )


def test_every_option_has_help():
    missing = [name for name, _, _, text in option_rows(trainer_options=False) if not text]
    assert missing == []


def test_lazy_public_api():
    import mixdpo

    assert mixdpo.MixDPOTrainer.__name__ == "MixDPOTrainer"
    assert mixdpo.MixturePolicy.__name__ == "MixturePolicy"
