"""``make_pairs``: sample completions from a model, score them with reward functions, and write preference
pairs in the trainer's format. Resumable: every scored prompt is appended (and flushed) to
``scored.jsonl`` as soon as it is done, and a rerun skips the prompts already there.

    out/scored.jsonl   one line per prompt: index, prompt, domain, completions, scores per reward
    out/pairs.jsonl    the pairs (TRL format; conversational when the prompts were rendered as chats)
    out/summary.json   counts per axis, settings
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from mixdpo.errors import ConfigError
from mixdpo.pairs.construct import DEFAULT_MARGINS, pairs_for_prompt
from mixdpo.rewards import REWARDS, RewardFunction, fluency_reward


@dataclass(frozen=True)
class PairSettings:
    """How completions are sampled and pairs formed (saved in ``summary.json``)."""

    model: str = "builtin:smollm2-135m"
    rewards: tuple[str, ...] = ("sentiment", "readability")
    samples: int = 4
    max_new_tokens: int = 48
    temperature: float = 1.0
    top_p: float = 0.95
    seed: int = 0
    batch_size: int = 8
    chat: bool | None = None  # None: use the tokenizer's chat template when it has one

    def __post_init__(self) -> None:
        if self.samples < 2:
            raise ConfigError(
                "samples", f"needs at least 2 completions per prompt to compare, got {self.samples}"
            )
        unknown = [r for r in self.rewards if r not in REWARDS and r != "fluency"]
        if unknown:
            raise ConfigError(
                "rewards", f"unknown reward {unknown[0]!r}; choose from {', '.join(REWARDS)}, fluency"
            )
        if not self.rewards:
            raise ConfigError("rewards", "name at least one reward")


def _done_indices(scored: Path) -> set[int]:
    if not scored.is_file():
        return set()
    done = set()
    for line in scored.read_text(encoding="utf-8").splitlines():
        try:
            done.add(int(json.loads(line)["index"]))
        except (json.JSONDecodeError, KeyError, ValueError):
            continue  # a line cut off by an interruption: that prompt is redone
    return done


@torch.no_grad()
def _sample(model, tokenizer, texts: list[Any], settings: PairSettings, seed: int) -> list[list[str]]:
    """``settings.samples`` completions for each prompt (chat messages or plain strings)."""
    if isinstance(texts[0], list):
        rendered = [
            tokenizer.apply_chat_template(t, tokenize=False, add_generation_prompt=True) for t in texts
        ]
        encoded = tokenizer(rendered, add_special_tokens=False, padding=True, return_tensors="pt")
    else:
        encoded = tokenizer(texts, padding=True, return_tensors="pt")
    torch.manual_seed(seed)
    out = model.generate(
        **encoded.to(model.device),
        do_sample=True,
        temperature=settings.temperature,
        top_p=settings.top_p,
        max_new_tokens=settings.max_new_tokens,
        num_return_sequences=settings.samples,
        pad_token_id=tokenizer.pad_token_id,
    )
    new = out[:, encoded["input_ids"].shape[1] :]
    decoded = [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
    return [decoded[i * settings.samples : (i + 1) * settings.samples] for i in range(len(texts))]


def make_pairs(
    prompts: Sequence[dict[str, str]],
    out_dir: str | Path,
    settings: PairSettings,
    margins: dict[str, float] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Sample, score and pair (module docstring); returns the summary."""
    from mixdpo.models import load_model_and_tokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    margins = {**DEFAULT_MARGINS, **(margins or {})}
    loaded = load_model_and_tokenizer(settings.model, seed=settings.seed)
    model, tokenizer = loaded.model.eval(), loaded.tokenizer
    tokenizer.padding_side = "left"  # generation continues the prompts' last tokens
    chat = settings.chat if settings.chat is not None else bool(getattr(tokenizer, "chat_template", None))
    rewards: dict[str, RewardFunction] = {
        name: fluency_reward(model, tokenizer) if name == "fluency" else REWARDS[name]
        for name in settings.rewards
    }
    scored_path = out / "scored.jsonl"
    done = _done_indices(scored_path)
    todo = [i for i in range(len(prompts)) if i not in done]
    if done:
        log(f"resuming: {len(done)} of {len(prompts)} prompts already scored in {scored_path}")
    with scored_path.open("a", encoding="utf-8") as sink:
        for start in tqdm(
            range(0, len(todo), settings.batch_size), desc="sampling and scoring", unit="batch"
        ):
            batch = todo[start : start + settings.batch_size]
            texts: list[Any] = [prompts[i]["prompt"] for i in batch]
            if chat:
                texts = [[{"role": "user", "content": t}] for t in texts]
            completions = _sample(model, tokenizer, texts, settings, seed=settings.seed + batch[0])
            for index, prompt, samples in zip(batch, texts, completions, strict=True):
                scores = {name: fn(samples) for name, fn in rewards.items()}
                record = {"index": index, "prompt": prompt, "domain": prompts[index].get("domain", "")}
                record |= {"completions": samples, "scores": scores}
                sink.write(json.dumps(record) + "\n")
                sink.flush()
    return write_pairs(out, margins, settings, chat)


def write_pairs(out: Path, margins: dict[str, float], settings: PairSettings, chat: bool) -> dict[str, Any]:
    """Form the pairs from ``scored.jsonl`` and write ``pairs.jsonl`` and ``summary.json``."""
    records = {}
    for line in (out / "scored.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        records[record["index"]] = record
    rows = []
    for index in sorted(records):
        record = records[index]
        completions = record["completions"]
        if chat:
            completions = [[{"role": "assistant", "content": c}] for c in completions]
        for row in pairs_for_prompt(record["prompt"], completions, record["scores"], margins):
            rows.append({**row, "domain": record["domain"]})
    with (out / "pairs.jsonl").open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    summary = {
        "prompts": len(records),
        "pairs": len(rows),
        "pairs_per_axis": dict(Counter(r["group"] for r in rows)),
        "margins": {k: margins[k] for k in settings.rewards},
        "settings": asdict(settings),
        "chat": chat,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
