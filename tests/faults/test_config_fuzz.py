"""Property: whatever a YAML config holds, loading it either succeeds or raises a ConfigError (exit 2)."""

from __future__ import annotations

import contextlib
import dataclasses

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mixdpo.errors import ConfigError
from mixdpo.trainer import MixDPOConfig
from mixdpo.trainer.config_io import load_config

OWN = sorted(
    f.name for f in dataclasses.fields(MixDPOConfig) if f.init and f.name not in ("output_dir", "train_file")
)
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 10_000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.text(max_size=5), max_size=3),
    st.sampled_from(["lora", "heads", "global", "user", "soft", "gumbel", "no", "steps", "3e-3", "keep_end"]),
)
KEYS = st.one_of(st.sampled_from(OWN), st.text(min_size=1, max_size=10))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(KEYS, VALUES, max_size=4))
# found by this test: transformers opens a non-dict accelerator_config / deepspeed value as a file
@example({"accelerator_config": False})
@example({"deepspeed": "no-such-file.json"})
def test_any_config_loads_or_raises_config_error(tmp_path, values):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "out"), **values}))
    try:
        config = load_config(path)
    except ConfigError:
        return
    assert isinstance(config, MixDPOConfig)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=20), max_size=4))
def test_any_override_strings_load_or_raise_config_error(overrides):
    with contextlib.suppress(ConfigError):
        load_config(None, ["output_dir=/tmp/mixdpo-fuzz", *overrides])
