"""``mixdpo make-pairs``: sample completions, score them with reward functions, write preference pairs."""

from __future__ import annotations

import argparse

NAME = "make-pairs"
HELP = "sample completions from a model, score them with rewards, and write preference pairs (JSONL)"
DESCRIPTION = """\
For every prompt, sample SAMPLES completions from MODEL, score each with every reward, and for each reward
axis pair the best completion (chosen) with the worst (rejected) when their scores differ by at least the
axis's margin. Pairs of all axes are pooled into OUT/pairs.jsonl with the axis as the hidden `group` column
(used by evaluation only). Interrupted runs resume: prompts already in OUT/scored.jsonl are not redone.

prompts: builtin:movies, builtin:books, builtin:reviews (both; 180 each), a .txt file (one per line) or a
.jsonl file with a "prompt" field.
rewards: sentiment, readability, spelling, non_toxicity, length, brevity, distinct_2, fluency.

example:
  mixdpo make-pairs --prompts builtin:reviews --rewards sentiment,readability --samples 4 --out pairs/
  mixdpo train model=builtin:smollm2-135m train_file=pairs/pairs.jsonl num_experts=2
"""


def _margins(text: str) -> dict[str, float]:
    out = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise argparse.ArgumentTypeError(
                f"expected reward=number pairs, e.g. sentiment=0.3; got {item!r}"
            )
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = DESCRIPTION
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--prompts", default="builtin:reviews", help="prompt source (default builtin:reviews)"
    )
    parser.add_argument("--limit", type=int, help="use only the first N prompts")
    parser.add_argument("--model", default="builtin:smollm2-135m", help="model spec to sample from")
    parser.add_argument("--rewards", default="sentiment,readability", help="comma-separated reward names")
    parser.add_argument("--samples", type=int, default=4, help="completions per prompt (>= 2)")
    parser.add_argument("--margin", type=_margins, default={}, help="per-axis margins, e.g. sentiment=0.3")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per generate call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-chat", action="store_true", help="plain prompts even if the model has a chat template"
    )


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    from mixdpo.pairs import PairSettings, load_prompts, make_pairs

    settings = PairSettings(
        model=args.model,
        rewards=tuple(r.strip() for r in args.rewards.split(",") if r.strip()),
        samples=args.samples,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
        batch_size=args.batch_size,
        chat=False if args.no_chat else None,
    )
    prompts = load_prompts(args.prompts, limit=args.limit)
    summary = make_pairs(prompts, args.out, settings, margins=args.margin)
    per_axis = ", ".join(f"{k} {v}" for k, v in summary["pairs_per_axis"].items()) or "none"
    print(
        f"{summary['pairs']} pairs from {summary['prompts']} prompts ({per_axis}) -> {args.out}/pairs.jsonl"
    )
    return 0
