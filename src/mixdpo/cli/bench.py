"""``mixdpo bench speed`` (mixdpo against TRL's DPOTrainer), ``mixdpo bench quality`` (mixtures against
baselines on the sampled tasks) and ``mixdpo bench regimes`` (where a mixture should win); see
:mod:`mixdpo.bench`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mixdpo.cli.bench_quality import (
    add_quality_arguments,
    add_update_benchmarks,
    invoked_command,
    run_quality,
)
from mixdpo.cli.bench_regimes import add_regimes_arguments, run_regimes_command

NAME = "bench"
HELP = (
    "benchmarks: `mixdpo bench speed` (step time, memory, FLOPs against TRL's DPOTrainer), "
    "`mixdpo bench quality` (mixtures vs baselines on the sampled tasks), "
    "`mixdpo bench regimes` (few-shot and unknown users)"
)
SPEED_DESCRIPTION = """\
Time real training steps of TRL's DPOTrainer and of mixdpo (K = 1, 2, 4, 8 for the lora, heads and
independent backends, with and without cached reference log-probs) on the same model, token ids, batch,
precision and thread count; report ratios, peak memory, passes by kind, FLOPs and the share of this
machine's matmul peak. Each case runs in its own process. Writes OUTPUT_DIR/speed.json and speed.md, and
with --update-benchmarks the speed section of BENCHMARKS.md.

tiers:
  fast   random:llama-small (3M parameters), 4 pairs x 64 tokens: a few minutes on 2 CPU cores
  full   builtin:smollm2-135m, 4 pairs x 128 tokens, plus batch 8 x 256 throughput cases: about an hour

examples:
  mixdpo bench speed --tier fast
  mixdpo bench speed --tier full --update-benchmarks
  mixdpo bench speed --experts 1,4 --backends lora --steps 5
"""


def _int_list(text: str) -> set[int]:
    try:
        values = {int(v) for v in text.split(",") if v.strip()}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="BENCHMARK", title="benchmarks")
    speed = sub.add_parser(
        "speed",
        help="step time and memory against TRL's DPOTrainer",
        description=SPEED_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    speed.add_argument("--tier", choices=("fast", "full"), default="fast", help="case set (default fast)")
    speed.add_argument("--model", help="model spec (default: the tier's)")
    speed.add_argument("--batch", type=int, help="pairs per step (default: the tier's)")
    speed.add_argument("--length", type=int, help="tokens per sequence, half prompt (default: the tier's)")
    speed.add_argument("--steps", type=int, help="timed steps per case (median reported)")
    speed.add_argument("--warmup", type=int, help="untimed steps first")
    speed.add_argument("--threads", type=int, help="torch threads per case (default 1)")
    speed.add_argument("--precision", choices=("fp32", "bf16"), help="both libraries (default fp32)")
    speed.add_argument("--experts", type=_int_list, help="only these K, e.g. 1,4 (TRL cases always run)")
    speed.add_argument("--backends", help="only these mixdpo backends, e.g. lora,heads")
    speed.add_argument(
        "--reference",
        choices=("cached", "live", "both"),
        default="both",
        help="cases with cached reference log-probs, computed live each step, or both (default)",
    )
    speed.add_argument(
        "--no-large", action="store_true", help="skip the full tier's batch 8 x 256 throughput cases"
    )
    speed.add_argument(
        "--output-dir", type=Path, help="where speed.json / speed.md go (default bench/speed-TIER)"
    )
    add_update_benchmarks(speed, "speed")
    speed.add_argument("--timeout", type=float, default=1800.0, help="seconds per case before giving up")
    add_quality_arguments(sub)
    add_regimes_arguments(sub)
    parser.set_defaults(_bench_parser=parser)


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    if args.bench == "quality":
        return run_quality(args)
    if args.bench == "regimes":
        return run_regimes_command(args)
    if args.bench != "speed":
        args._bench_parser.print_help()
        return 0
    import importlib.util

    from mixdpo.bench.speed_cases import MIXDPO_BACKENDS, select, tier
    from mixdpo.bench.speed_suite import run_speed_suite
    from mixdpo.errors import ConfigError, MixDPOError

    if importlib.util.find_spec("trl") is None:
        raise MixDPOError("bench speed compares with TRL's DPOTrainer: pip install 'mixdpo[bench]' (trl)")

    chosen = tier(
        args.tier,
        model=args.model,
        batch=args.batch,
        length=args.length,
        steps=args.steps,
        warmup=args.warmup,
        threads=args.threads,
        precision=args.precision,
    )
    methods = None
    if args.backends:
        methods = {m.strip() for m in args.backends.split(",") if m.strip()}
        unknown = sorted(methods - set(MIXDPO_BACKENDS))
        if unknown:
            raise ConfigError(
                "--backends", f"unknown backend {unknown[0]!r}; choose from {', '.join(MIXDPO_BACKENDS)}"
            )
    cases = select(chosen.cases, args.experts, methods, args.reference, large=not args.no_large)
    chosen = type(chosen)(chosen.settings, cases)
    out_dir = args.output_dir or Path("bench") / f"speed-{args.tier}"
    document = run_speed_suite(
        args.tier,
        chosen,
        out_dir,
        benchmarks_md=args.update_benchmarks,
        command=invoked_command(f"mixdpo bench speed --tier {args.tier}"),
        timeout=args.timeout,
    )
    print((out_dir / "speed.md").read_text())
    failed = [r for r in document["rows"] if r.get("error")]
    print(
        f"wrote {out_dir / 'speed.json'} and {out_dir / 'speed.md'}"
        + (f" (and the speed section of {args.update_benchmarks})" if args.update_benchmarks else "")
    )
    if failed:
        print(f"{len(failed)} case(s) failed; see the table", file=sys.stderr)
    return 0
