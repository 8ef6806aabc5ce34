"""``mixdpo generate RUN_DIR --prompt TEXT``: sample completions from the trained mixture."""

from __future__ import annotations

import argparse
import json

NAME = "generate"
HELP = "generate completions from a trained mixture (routing: sample, top1, expert:K, token-mixture)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run directory (or a saved policy directory)")
    parser.add_argument("--prompt", action="append", required=True, help="a prompt (repeat for several)")
    parser.add_argument("--user", help="user id for user gates (unknown ids use the learned fallback)")
    parser.add_argument(
        "--routing",
        default="sample",
        help="sample (draw an expert from the gate: the mixture policy), top1, expert:K (0-based), "
        "token-mixture (mix next-token distributions: a different distribution), or reference",
    )
    parser.add_argument(
        "--chat", action="store_true", help="wrap each prompt as a user turn of the chat template"
    )
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--greedy", action="store_true", help="decode greedily instead of sampling")
    parser.add_argument("--seed", type=int, default=None, help="make expert draws and sampling reproducible")
    parser.add_argument("--json", action="store_true", help="print one JSON object per prompt")


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    from pathlib import Path

    from mixdpo.policy import MixturePolicy
    from mixdpo.workflows import load_run_policy

    path = Path(args.run_dir)
    policy = (
        MixturePolicy.from_pretrained(path)
        if (path / "mixdpo_policy.json").is_file()
        else load_run_policy(path)
    )
    prompts = [[{"role": "user", "content": p}] for p in args.prompt] if args.chat else list(args.prompt)
    out = policy.generate(
        prompts,
        users=[args.user] * len(prompts) if args.user is not None else None,
        routing=args.routing,
        max_new_tokens=args.max_new_tokens,
        do_sample=not args.greedy,
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        seed=args.seed,
    )
    for prompt, text, expert, weights in zip(
        args.prompt, out.texts, out.experts, out.weights.tolist(), strict=True
    ):
        if args.json:
            print(json.dumps({"prompt": prompt, "completion": text, "expert": expert, "weights": weights}))
        else:
            where = f"expert {expert}" if expert is not None else args.routing
            print(f"[{where}; w = {', '.join(f'{w:.2f}' for w in weights)}] {prompt}{text}")
    return 0
