"""``mixdpo bench quality``: Mix-DPO and MoE-DPO against baselines on the sampled tasks, and ablations
(:mod:`mixdpo.bench.quality`)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from mixdpo.bench.quality_cases import ALL_METHODS  # plain data: keeps --help in step with the methods

DESCRIPTION = """\
Train Mix-DPO (K experts, global weights) and MoE-DPO (K experts, the task's gate) and single-policy
baselines with the same LoRA adapters, data, steps and seeds on the tasks built from sampled, scored
completions (personas, cross-domain, multi-reward). Baselines: plain DPO (K = 1), TRL's DPOTrainer,
conditioned DPO (user id / domain written into the prompt), wide DPO (one adapter of rank K*r) and oracle
per-group DPO (one policy per hidden group, trained with the labels). Each is evaluated on held-out pairs
(mixture and per-group accuracy, ARI, routing accuracy) and on text generated from held-out prompts
(reward gain over the reference model, per expert and for the mixture). Writes OUTPUT_DIR/quality.json,
quality.md and quality.png, and with --update-benchmarks the quality section of BENCHMARKS.md.
Interrupted runs resume: cases already in quality.json with the same settings are kept, and so are cases
of earlier runs into the same directory (run a tier model by model, or seed by seed, and the report
covers them all). With --update-benchmarks, cases in the published docs/benchmarks/quality-TIER.json are
kept too (a fresh clone continues the published tier), and that file is updated after every case.

--suite ablations trains MoE-DPO on cross-domain with one thing changed per case: K = 1, 2, 4, 8; soft, hard
or Gumbel E-step; lora, heads or independent experts; symmetry breaking off. It runs on the tier's
largest model and first seed unless --models / --seeds say otherwise.

tiers:
  fast   random:llama-tiny, small tasks, one seed, 8 steps: a few minutes on 2 CPU cores (a smoke test)
  full   random:llama-1m, random:llama-20m and builtin:smollm2-135m, seeds 0 1 2, 40 steps of 8 pairs

examples:
  mixdpo bench quality --tier fast
  mixdpo bench quality --tier full --update-benchmarks
  mixdpo bench quality --tier full --models builtin:smollm2-135m --tasks personas --seeds 0
  mixdpo bench quality --tier full --suite ablations --update-benchmarks
  mixdpo bench quality --tier full --report-only --update-benchmarks   # after the report changed
"""


def parse_names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def parse_ints(text: str) -> list[int]:
    try:
        return [int(v) for v in parse_names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_update_benchmarks(parser: argparse.ArgumentParser, section: str) -> None:
    """The ``--update-benchmarks [PATH]`` option every ``mixdpo bench`` command has."""
    parser.add_argument(
        "--update-benchmarks",
        nargs="?",
        const=Path("BENCHMARKS.md"),
        type=Path,
        metavar="PATH",
        help=f"replace the {section} section of PATH (default BENCHMARKS.md)",
    )


def invoked_command(default: str) -> str:
    """The ``mixdpo bench ...`` command line this process was started with (``default`` when it was not
    started from the command line), for the reports' "Command:" line."""
    if sys.argv[1:2] == ["bench"]:
        return "mixdpo " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    return default


def add_quality_arguments(sub) -> None:
    quality = sub.add_parser(
        "quality",
        help="held-out and generation quality of Mix-DPO and MoE-DPO against baselines, and ablations",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    quality.add_argument("--tier", choices=("fast", "full"), default="fast", help="case set (default fast)")
    quality.add_argument(
        "--suite", choices=("main", "ablations"), default="main", help="the methods (main) or ablations"
    )
    quality.add_argument("--tasks", type=parse_names, help="only these tasks, e.g. personas,cross-domain")
    quality.add_argument(
        "--methods",
        type=parse_names,
        help=f"only these methods: {', '.join(ALL_METHODS)}",
    )
    quality.add_argument("--variants", type=parse_names, help="only these ablations, e.g. 'K=4,hard E-step'")
    quality.add_argument("--models", type=parse_names, help="these model specs instead of the tier's")
    quality.add_argument("--seeds", type=parse_ints, help="these seeds instead of the tier's, e.g. 0,1,2")
    quality.add_argument("--max-steps", type=int, help="training steps per case (default: the tier's)")
    quality.add_argument("--generation-prompts", type=int, help="held-out prompts to generate from (0: none)")
    quality.add_argument("--output-dir", type=Path, help="default bench/quality-TIER[-ablations]")
    quality.add_argument("--keep-runs", action="store_true", help="keep each case's run directory")
    quality.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: rewrite the report (and with --update-benchmarks the section) from the cases "
        "already measured",
    )
    add_update_benchmarks(quality, "quality")


def run_quality(args: argparse.Namespace) -> int:
    from mixdpo.bench.quality_cases import select, tier
    from mixdpo.bench.quality_suite import run_quality_suite

    chosen = select(
        tier(args.tier, args.suite),
        tasks=args.tasks,
        methods=args.methods,
        variants=args.variants,
        models=args.models,
        seeds=args.seeds,
        max_steps=args.max_steps,
        generation_prompts=args.generation_prompts,
    )
    suffix = "-ablations" if args.suite == "ablations" else ""
    out_dir = args.output_dir or Path("bench") / f"quality-{args.tier}{suffix}"
    document = run_quality_suite(
        args.tier,
        chosen,
        out_dir,
        benchmarks_md=args.update_benchmarks,
        command=invoked_command(f"mixdpo bench quality --tier {args.tier} --suite {args.suite}"),
        keep_runs=args.keep_runs,
        report_only=args.report_only,
    )
    print((out_dir / "quality.md").read_text())
    failed = [r for r in document["rows"] if r.get("error")]
    print(f"wrote {out_dir / 'quality.json'}, quality.md and quality.png")
    if failed:
        print(f"{len(failed)} case(s) failed; see the report", file=sys.stderr)
        return 1
    return 0
