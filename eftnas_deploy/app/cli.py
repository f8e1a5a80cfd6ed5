"""`eftnas-deploy` command line: each subcommand lives in its own module with `register(subparsers)`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from eftnas_deploy.app.commands.checks import check_arguments
from eftnas_deploy.core.errors import EftnasError

# Subcommand -> (module defining it with `register(subparsers)`, one-line help). Only the module of the command
# being run is imported, so `eftnas-deploy --help` loads no torch; tests check the help lines match the modules.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("eftnas_deploy.app.commands.demo", "offline end-to-end run on an embedded task (bundle + report)"),
    "run": ("eftnas_deploy.app.commands.run", "run the whole pipeline (teacher → ... → bundle + report), resumable"),
    "train-teacher": ("eftnas_deploy.app.commands.train", "fine-tune (or train from scratch) the teacher on a task"),
    "importance": ("eftnas_deploy.app.commands.space", "fine-tune briefly and score every head and FFN neuron"),
    "space": (
        "eftnas_deploy.app.commands.space",
        "reorder by importance and generate search_space.json at cost targets",
    ),
    "train-supernet": ("eftnas_deploy.app.commands.train", "train a weight-sharing super-network"),
    "lut": ("eftnas_deploy.app.commands.lut", "latency lookup table: measure on this CPU, validate end to end"),
    "search": ("eftnas_deploy.app.commands.search", "search a super-network for the accuracy/latency Pareto front"),
    "slice": ("eftnas_deploy.app.commands.slice", "write the dense model of a sub-network (HF directory)"),
    "cost": ("eftnas_deploy.app.commands.cost", "MACs and parameters of a sub-network"),
    "export": (
        "eftnas_deploy.app.commands.export",
        "export a sub-network as a deployment bundle (ONNX, OpenVINO, INT8)",
    ),
    "benchmark": ("eftnas_deploy.app.commands.benchmark", "time a deployment bundle (median/p90 latency, throughput)"),
    "decoder": (
        "eftnas_deploy.app.commands.decoder",
        "decoder LLM (Llama/Qwen2): elastic super-network → ms/token search → stateful OpenVINO IR, resumable",
    ),
}
ALL = "*"


def build_parser(command: str | None = ALL) -> argparse.ArgumentParser:
    """The CLI parser; `command` names the one subcommand to build fully (ALL: every one; None: none)."""
    from eftnas_deploy import __version__

    parser = argparse.ArgumentParser(
        prog="eftnas-deploy",
        description="Compress BERT/RoBERTa/DistilBERT with EFTNAS super-networks and ship latency-bounded CPU models.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if command == ALL:
        modules = list(dict.fromkeys(module for module, _ in COMMANDS.values()))
    else:
        modules = [COMMANDS[command][0]] if command in COMMANDS else []
    for module in modules:
        importlib.import_module(module).register(subparsers)
    for name, (_, help_text) in COMMANDS.items():
        if name not in subparsers.choices:
            subparsers.add_parser(name, help=help_text)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    return next((arg for arg in argv if arg in COMMANDS), None)


def main(argv: Sequence[str] | None = None) -> int:
    from eftnas_deploy.app.third_party import quiet_third_party

    quiet_third_party()
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(argv))
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
