"""``multi-reward``: pairs from three reward axes pooled with the axis hidden (Mix-DPO, global gate).

The paper's multi-reward setting, built from real samples (:mod:`mixdpo.tasks.sampled`): for each review
prompt and each axis of :data:`AXES` (VADER sentiment, Flesch readability, length in words as a stand-in
for informativeness), SmolLM2's best completion on that axis is chosen over its worst when the gap
reaches the axis's margin. All pairs are pooled; the axis is the hidden ``group``. Nothing in a row says
which axis it came from, and one prompt can carry pairs of several axes.

Defaults: the pairs of 240 training prompts and 120 evaluation prompts (no prompt in both).
"""

from __future__ import annotations

import random

from mixdpo.tasks.base import Pair, TaskData, check_sizes, numbers_markdown, to_row
from mixdpo.tasks.sampled import SAMPLES_COMMAND, axis_agreement, extreme_pair, load_samples, split_prompts

NAME = "multi-reward"
SUMMARY = (
    "sampled SmolLM2 reviews; pairs of 3 hidden reward axes (sentiment, readability, length): global gate"
)
SIZES = {"train_prompts": 240, "eval_prompts": 120}
AXES = ("sentiment", "readability", "length")
# make-pairs' margins (mixdpo.pairs.construct.DEFAULT_MARGINS; a test keeps them equal). Not imported:
# mixdpo.pairs builds on mixdpo.tasks.
MARGINS = {"sentiment": 0.2, "readability": 10.0, "length": 5.0}
PREFERENCES = {
    "sentiment": "the most positive sampled review (VADER compound)",
    "readability": "the easiest to read (Flesch reading ease)",
    "length": "the longest, most detailed review (words)",
}

_DESCRIPTION = """\
# multi-reward

Each prompt asks for a short review of an invented movie or book; four completions were **sampled from
SmolLM2-135M-Instruct** and scored by three reward functions. For each axis whose best and worst
completion differ by its margin ({margins}), the best is chosen over the worst. Pairs of all axes are
pooled, the axis hidden in `group`:

{axes}

**Why one policy cannot satisfy every axis.** The axes rank the same samples differently. Among each
axis's pairs, how the other axes rank the same two completions (same direction / tie / opposite):

{agreement}

Where an axis's pair runs against another axis, a single policy trades one axis off against the other.
Mix-DPO's claim is that its experts each follow one axis: generating with expert k should raise axis k's
reward over the reference model more than plain DPO does (measured by `mixdpo bench quality`).

Samples: `{command}`.

## Numbers for this build

{numbers}
"""


def build(seed: int, sizes: dict[str, int], fmt: str, samples: str | None = None) -> TaskData:
    """Build the task (``sizes``: :data:`SIZES` with overrides; ``samples``: a ``scored.jsonl``, None =
    the shipped one)."""
    check_sizes(sizes, multiples={}, minimums={"train_prompts": 1})
    loaded = load_samples(samples)
    usable = [p for p in loaded if any(extreme_pair(p, a, MARGINS[a]) for a in AXES)]
    counts = {"train": sizes["train_prompts"], "eval": sizes["eval_prompts"]}
    chosen = split_prompts(random.Random(f"{NAME}:{seed}:prompts"), usable, counts, "prompts have a pair")
    splits: dict[str, list[Pair]] = {}
    for split, items in chosen.items():
        pairs = []
        for item in items:
            for axis in AXES:
                pair = extreme_pair(item, axis, MARGINS[axis])
                if pair is not None:
                    pairs.append(Pair(item.request, pair[0], pair[1], axis, item.domain))
        random.Random(f"{NAME}:{seed}:order:{split}").shuffle(pairs)
        splits[split] = pairs
    task = TaskData(
        name=NAME,
        train=[to_row(p, fmt) for p in splits["train"]],
        eval=[to_row(p, fmt) for p in splits["eval"]],
        new_users=[],
        description="",
        groups=list(AXES),
        preferences=dict(PREFERENCES),
        recommended={
            "num_experts": 3,
            "gate": "global",
            "beta": 0.1,
            "notes": "K=3, one expert per axis, Mix-DPO's global weights. Baseline: num_experts=1 (plain "
            "DPO), which averages the axes.",
        },
        seed=seed,
        sizes=dict(sizes),
        format=fmt,
    )
    agreement = axis_agreement(chosen["train"], AXES, MARGINS)
    table = "| axis's pairs vs other axis | same | tie | opposite |\n|---|---:|---:|---:|\n" + "\n".join(
        f"| {name} | {v['same']:.0%} | {v['tie']:.0%} | {v['other']:.0%} |" for name, v in agreement.items()
    )
    task.description = _DESCRIPTION.format(
        margins=", ".join(f"{a} {m:g}" for a, m in MARGINS.items()),
        axes="\n".join(f"- **{axis}**: {PREFERENCES[axis]};" for axis in AXES),
        agreement=table,
        command=SAMPLES_COMMAND if samples is None else f"scored samples from {samples}",
        numbers=numbers_markdown(task),
    )
    return task
