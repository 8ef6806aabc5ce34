"""Entry point of the ``mixdpo`` command: builds the sub-command parser and maps errors to exit codes.

Exit codes: 0 success, 1 unexpected internal error (a bug: traceback shown), 2 a user mistake (bad
option, bad data: one clear message, no traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mixdpo import __version__
from mixdpo.cli import demo, env

# Each sub-command module exposes NAME, HELP, add_arguments(parser) and run(args) -> int.
COMMANDS = (demo, env)


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
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 0
    from mixdpo.errors import MixDPOError

    try:
        return int(args._run(args) or 0)
    except MixDPOError as err:
        print(f"mixdpo {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mixdpo {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
