"""The ``threadwise`` command line.

Each subcommand lives in its own module, which provides ``add_parser(subparsers)`` to register
itself and sets ``handler`` (a function taking the parsed arguments and returning an exit code)
as a parser default. Further subcommands (``tour``, ``watch``) plug in the same way.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from threadwise import _demo, _tour, _watch
from threadwise._version import __version__
from threadwise.download import _cli as _get

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """Return the parser for the ``threadwise`` command and all its subcommands."""
    parser = argparse.ArgumentParser(
        prog="threadwise",
        description="Threads that are safe, observable and fast.",
    )
    parser.add_argument("--version", action="version", version=f"threadwise {__version__}")
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", title="commands", required=True
    )
    _demo.add_parser(subparsers)
    _get.add_parser(subparsers)
    _tour.add_parser(subparsers)
    _watch.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code.

    Usage errors return 2, ``--help`` and ``--version`` return 0, Ctrl-C returns 130.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help, --version and usage errors
        return _exit_code(exc)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `threadwise tour | head`: the reader left. Point stdout at devnull so the
        # interpreter's final flush does not raise again, and exit like other tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1
