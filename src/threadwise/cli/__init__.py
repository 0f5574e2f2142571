"""The ``threadwise`` command line.

Each subcommand lives in a module of its own (``_demo``, ``_get``, ``_tour``, ``_watch``), which
provides ``add_parser(subparsers)`` to register itself and sets ``handler`` (a function taking the
parsed arguments and returning an exit code) as a parser default. Only the module of the command
being run is imported: the others are registered by name and one-line help alone, so
``threadwise --help`` and ``threadwise get --help`` load neither the downloader nor rich.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from threadwise._typing import Any
from threadwise._version import __version__

Handler = Callable[[argparse.Namespace], int]


def _help_width() -> int:
    """The width argparse would wrap help to, found as ``shutil.get_terminal_size()`` finds it
    (``$COLUMNS``, else the terminal's, else 80) without importing shutil, which with the
    compression modules it imports takes longer than parsing the command line."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return (columns or 80) - 2


class _Formatter(argparse.HelpFormatter):
    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        super().__init__(
            prog, indent_increment, max_help_position, _help_width() if width is None else width
        )


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose help is wrapped as usual, without importing shutil; the
    subcommands' parsers are of this class too (``add_subparsers`` makes them so)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)


# name -> (module, the help line shown by `threadwise --help`). The help lines are repeated here
# so that listing the commands imports none of them; tests check they match each module's own.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("_demo", "download files from a local server, sequentially then in parallel"),
    "get": ("_get", "download URLs in parallel, resumably, with a live display"),
    "tour": ("_tour", "run the threading tutorial's lessons, rewritten with threadwise"),
    "watch": ("_watch", "run a Python script with a live table of its threads"),
}


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv``: its first word that is not an option (the top-level
    options, ``-h`` and ``--version``, take no value)."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Return the parser for the ``threadwise`` command.

    With ``command``, only that subcommand's module is imported and its full parser built; the
    other subcommands get a placeholder that carries their help line. Without it, every
    subcommand is built in full.
    """
    parser = _Parser(
        prog="threadwise",
        description="Threads that are safe, observable and fast.",
    )
    parser.add_argument("--version", action="version", version=f"threadwise {__version__}")
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", title="commands", required=True
    )
    for name, (module_name, help_line) in COMMANDS.items():
        if command is None or name == command:
            module = importlib.import_module(f"{__name__}.{module_name}")
            module.add_parser(subparsers)
        else:
            subparsers.add_parser(name, help=help_line)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code.

    Usage errors return 2, ``--help`` and ``--version`` return 0, Ctrl-C returns 130.
    """
    words = sys.argv[1:] if argv is None else argv
    command = _command_of(words)
    parser = build_parser(command if command in COMMANDS else "")
    try:
        args, extra = parser.parse_known_args(words)
        if extra:
            # A command may take words argparse left over (`get -O a URL1 -O b URL2`: a list of
            # positionals is read only once); anything still left is an error, as parse_args says.
            take: Callable[[argparse.Namespace, list[str]], list[str]] | None = getattr(
                args, "take_extra", None
            )
            rest = extra if take is None else take(args, extra)
            if rest:
                command_parser: argparse.ArgumentParser = getattr(args, "get_parser", parser)
                command_parser.error(f"unrecognized arguments: {' '.join(rest)}")
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


def run() -> None:
    """The ``threadwise`` command and ``python -m threadwise``: :func:`main`, then exit.

    At exit the interpreter clears every module and lets the collector free the cycles that
    leaves (functions with their globals, classes): tens of milliseconds for a command that runs
    for a few hundred. The process ends here, so its objects are frozen out of the collector's
    reach and left for the OS to reclaim; standard output and error are still flushed.
    """
    code = main()
    import gc

    gc.freeze()
    raise SystemExit(code)


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1
