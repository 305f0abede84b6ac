"""The `penguiflow` parser and the dispatch of its subcommands."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import inspect
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from ._errors import USAGE, exit_code, is_user_error

NEEDS_RICH = "penguiflow: the command line needs rich: pip install 'penguiflow[cli]'"

DESCRIPTION = """\
Run and inspect penguiflow agents and flows.

Runs are recorded in one store: --store URL, else $PENGUIFLOW_STORE, else
.penguiflow/state.db (a SQLite file, created on first write).

  penguiflow run my_agents:build_planner "What is 2+2?"
  penguiflow trace list
  penguiflow trace view <run id or prefix> --open
"""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line: what, then how to fix."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"penguiflow: {message}; see '{self.prog} --help'\n")
        raise SystemExit(USAGE)


def parser() -> argparse.ArgumentParser:
    """The `penguiflow` argument parser, with every subcommand."""
    from . import _run, _serve, _trace

    root = _Parser(
        prog="penguiflow",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = root.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _run.add_commands(commands)
    _trace.add_commands(commands)
    _serve.add_commands(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `penguiflow` command line on `argv` (default: `sys.argv[1:]`); the exit
    status: 0 on success, 1 when the work failed, 2 for a wrong command line."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if importlib.util.find_spec("rich") is None:
        print(NEEDS_RICH, file=sys.stderr)
        return USAGE
    try:
        if args_list[:1] == ["worker"]:
            from ._serve import worker

            return worker(args_list[1:])
        try:
            args = parser().parse_args(args_list)
        except SystemExit as exit_:
            return exit_.code if isinstance(exit_.code, int) else USAGE
        return _dispatch(args)
    except Exception as exc:
        if not is_user_error(exc):
            raise
        print(f"penguiflow: {exc}", file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        print("penguiflow: interrupted", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    from rich.console import Console

    # Piped or captured output is not cut to 80 columns: it is read by scripts and tests.
    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    console = Console(soft_wrap=True, width=200 if wide else None)
    outcome: Any = args.handler(args, console)
    if inspect.iscoroutine(outcome):
        outcome = asyncio.run(outcome)
    return int(outcome)
