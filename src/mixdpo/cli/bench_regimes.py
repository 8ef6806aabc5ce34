"""``mixdpo bench regimes``: regimes where a latent mixture should beat single policies
(:mod:`mixdpo.bench.regimes`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mixdpo.cli.bench_quality import add_update_benchmarks, invoked_command, parse_ints, parse_names

DESCRIPTION = """\
Regimes where a latent mixture should have an edge, each with a stated hypothesis and the measured answer.

few-shot-users: MoE-DPO (user gate), conditioned DPO (user id in the prompt) and plain DPO train on the
training users of reviews-users; users never seen in training then bring n labelled pairs each (n = 0, 2,
4, 8, 16). MoE-DPO refits only its gate (K numbers per user); conditioned DPO fine-tunes its policy on the
same pairs; both are scored on the new users' held-out pairs. n = 0 is the unknown-user case.

Writes OUTPUT_DIR/regimes.json, regimes.md and regimes.png, and with --update-benchmarks the regimes
section of BENCHMARKS.md. Resumable per seed and regime (many-users per case): run the regimes of a tier
one at a time (--regimes), or seed by seed, into one directory and the report covers them all; a
settings change re-measures only the regimes whose own settings changed. With
--update-benchmarks the run continues from the published docs/benchmarks/regimes-TIER.json when the
output directory has nothing of the same settings (a fresh clone), and updates that file after every
measured case.

examples:
  mixdpo bench regimes --tier fast
  mixdpo bench regimes --tier full --update-benchmarks
  mixdpo bench regimes --tier full --regimes few-shot-users --seeds 0 --update-benchmarks
  mixdpo bench regimes --tier full --report-only --update-benchmarks   # after the report changed
"""


def add_regimes_arguments(sub) -> None:
    regimes = sub.add_parser(
        "regimes",
        help="regimes where a mixture should beat single policies (few-shot new users, unknown users)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    regimes.add_argument("--tier", choices=("fast", "full"), default="fast", help="case set (default fast)")
    regimes.add_argument("--model", help="base model spec instead of the tier's")
    regimes.add_argument("--seeds", type=parse_ints, help="these seeds instead of the tier's, e.g. 0,1,2")
    regimes.add_argument(
        "--regimes", type=parse_names, help="only these regimes: few-shot-users, many-users (default both)"
    )
    regimes.add_argument("--output-dir", type=Path, help="default bench/regimes-TIER")
    regimes.add_argument(
        "--report-only",
        action="store_true",
        help="measure nothing: rewrite the report (and with --update-benchmarks the section) from what is "
        "already measured",
    )
    add_update_benchmarks(regimes, "regimes")


def run_regimes_command(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from mixdpo.bench.regimes import regime_tier
    from mixdpo.bench.regimes_report import SECTION_BEGIN, SECTION_END, plot_regimes, regimes_markdown
    from mixdpo.bench.regimes_suite import REGIMES, run_regimes
    from mixdpo.bench.sections import publish, published_path, replace_section

    settings = regime_tier(args.tier)
    if args.model:
        settings = replace(settings, model=args.model)
    if args.seeds:
        settings = replace(settings, seeds=tuple(args.seeds))
    out_dir = args.output_dir or Path("bench") / f"regimes-{args.tier}"
    command = invoked_command(f"mixdpo bench regimes --tier {args.tier}")
    stem = f"regimes-{args.tier}"
    update = args.update_benchmarks
    published = None if update is None else published_path(update, stem, ".json")
    document = run_regimes(
        settings, out_dir, regimes=tuple(args.regimes or REGIMES), command=command, published=published,
        report_only=args.report_only,
    )  # fmt: skip
    plot = plot_regimes(document, out_dir / "regimes.png")
    (out_dir / "regimes.md").write_text(regimes_markdown(document, plot.name if plot else None, args.tier))
    if args.update_benchmarks is not None:
        image, data = publish([plot, out_dir / "regimes.json"], args.update_benchmarks, stem)
        text = regimes_markdown(document, image, args.tier, data)
        replace_section(args.update_benchmarks, text, SECTION_BEGIN, SECTION_END)
    print((out_dir / "regimes.md").read_text())
    print(f"wrote {out_dir / 'regimes.json'}, regimes.md and regimes.png")
    return 0
