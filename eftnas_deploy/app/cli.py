"""`eftnas-deploy` command line: each subcommand lives in its own module with `register(subparsers)`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from eftnas_deploy.app.commands.checks import check_arguments
from eftnas_deploy.core.errors import EftnasError

# Modules that define subcommands; each has `register(subparsers)` and sets `func` on its parser.
COMMAND_MODULES = (
    "eftnas_deploy.app.commands.demo",
    "eftnas_deploy.app.commands.slice",
    "eftnas_deploy.app.commands.cost",
    "eftnas_deploy.app.commands.export",
    "eftnas_deploy.app.commands.benchmark",
    "eftnas_deploy.app.commands.space",
    "eftnas_deploy.app.commands.train",
    "eftnas_deploy.app.commands.search",
    "eftnas_deploy.app.commands.lut",
    "eftnas_deploy.app.commands.run",
)


def build_parser() -> argparse.ArgumentParser:
    from eftnas_deploy import __version__

    parser = argparse.ArgumentParser(
        prog="eftnas-deploy",
        description="Compress BERT/RoBERTa with EFTNAS super-networks and ship latency-bounded CPU models.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from eftnas_deploy.app.third_party import quiet_third_party

    quiet_third_party()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_arguments(args)
        return int(args.func(args) or 0)
    except (EftnasError, OSError) as exc:
        # Bad input (EftnasError), a missing or unreadable file (OSError): one line, no traceback.
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, EftnasError):
        return str(exc)  # worded for the user (a multi-problem config error lists one problem per line)
    text = " ".join(str(exc).split())
    return text if isinstance(exc, FileNotFoundError) else f"{text} ({type(exc).__name__})"


if __name__ == "__main__":
    sys.exit(main())
