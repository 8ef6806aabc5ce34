"""Entry point of the ``mixdpo`` command: builds the sub-command parser and maps errors to exit codes.

Exit codes: 0 success, 1 unexpected internal error (a bug: traceback shown), 2 a user mistake (bad
option, bad data: one clear message, no traceback) or a run that stopped on a numerical fault, 130 / 143
interrupted by SIGINT / SIGTERM (after writing a checkpoint to resume from).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from mixdpo import __version__
from mixdpo.cli import bench, demo, env, evaluate, generate, make_pairs, personalize, tasks, train

# Each sub-command module exposes NAME, HELP, add_arguments(parser) and run(args, overrides) -> int.
COMMANDS = (demo, train, evaluate, generate, personalize, make_pairs, tasks, bench, env)
# Sub-commands that take key=value / --key=value training-option overrides after their own arguments.
TAKES_OVERRIDES = {demo.NAME, train.NAME}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mixdpo",
        description=(
            "Mix-DPO / MoE-DPO: train a mixture of K expert policies and a gate on pairwise preference "
            "data by stochastic variational EM, then evaluate, route and generate from the mixture."
        ),
    )
    parser.add_argument("--version", action="version", version=f"mixdpo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for module in COMMANDS:
        cmd = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 0
    if extra and args.command not in TAKES_OVERRIDES:
        parser.error(f"unrecognized arguments for '{args.command}': {' '.join(extra)}")
    from mixdpo.errors import MixDPOError, TrainingInterrupted

    _quiet_libraries()
    _mixdpo_logging()
    try:
        code = int(args._run(args, extra) or 0)
    except TrainingInterrupted as err:
        print(f"mixdpo {args.command}: {err}", file=sys.stderr)
        return 143 if err.signal_name == "SIGTERM" else 130
    except MixDPOError as err:
        print(f"mixdpo {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mixdpo {args.command}: interrupted", file=sys.stderr)
        return 130
    if _process_group_started():
        from mixdpo.trainer.distributed import end_process_group

        end_process_group()
    return code


def _process_group_started() -> bool:
    """Whether this process joined a torchrun / accelerate launch process group (checked without importing
    torch or the trainer: light commands never import them)."""
    torch = sys.modules.get("torch")
    return torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized()


def _mixdpo_logging() -> None:
    """mixdpo's own log records go to stderr at ``MIXDPO_LOG_LEVEL`` (default WARNING; ``info`` also shows
    e.g. when reference log-probs are computed rather than loaded from the cache), tagged with the process
    rank under torchrun / accelerate launch."""
    import logging
    import os

    level = os.environ.get("MIXDPO_LOG_LEVEL", "WARNING").upper()
    logger = logging.getLogger("mixdpo")
    if logger.handlers:
        return
    handler = logging.StreamHandler()
    rank = os.environ.get("RANK")
    prefix = f"[rank {rank}] " if rank is not None and os.environ.get("WORLD_SIZE", "1") != "1" else ""
    handler.setFormatter(logging.Formatter(f"{prefix}mixdpo %(levelname)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level if level in logging.getLevelNamesMapping() else "WARNING")


def _quiet_libraries() -> None:
    """Keep library chatter (weight-loading progress bars, PEFT's renamed-method warnings) off the
    terminal; training progress and mixdpo's own messages stay."""
    import warnings

    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
    try:
        from transformers.utils import logging as hf_logging

        # Weight-loading bars only; the verbosity stays (it also decides whether the Trainer shows its
        # progress bar: disable_tqdm defaults to True above warning level).
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass


def entry() -> None:
    """The ``mixdpo`` command (and ``python -m mixdpo.cli.main``, what ``accelerate launch -m`` runs).

    In a process of a torchrun / accelerate launch it ends without the interpreter's finalisation: after
    Python's exit handlers (trackers, logging) have run and the output is flushed, ``os._exit``. A thread
    left in a C++ library (Gloo, FSDP, DeepSpeed) could otherwise abort the process while it is being torn
    down, after its work was done ("terminate called without an active exception", exit -6), which fails a
    launch that succeeded: seen in CI in ZeRO-3 and FSDP tests, even with the process group destroyed."""
    code = main()
    if os.environ.get("WORLD_SIZE") in (None, "", "1"):
        sys.exit(code)
    import atexit
    import logging

    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
