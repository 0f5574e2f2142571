"""``threadwise watch``: run a Python script with a live table of its threads.

The script runs in this process's main thread, exactly as ``python script.py`` would run it
(same ``sys.argv``, ``__main__``, exit code, and Ctrl-C goes to it); a sampler thread redraws
the table on stderr and a summary is printed when the script ends.
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field

from threadwise._typing import Any

from .._inspect import ThreadInfo, format_table, threads
from .._task import State
from ._args import number


@dataclass
class _Summary:
    seen: dict[int | None, str] = field(default_factory=dict)  # ident -> name
    longest_waits: dict[tuple[str, str], float] = field(default_factory=dict)
    peak_threads: int = 0

    def record(self, infos: list[ThreadInfo]) -> None:
        self.peak_threads = max(self.peak_threads, len(infos))
        for info in infos:
            self.seen[info.ident] = info.name
            if info.state is State.BLOCKED and info.blocked_on:
                key = (info.name, info.blocked_on)
                self.longest_waits[key] = max(self.longest_waits.get(key, 0.0), info.running_for)

    def render(self, elapsed: float, exit_code: int) -> str:
        names = sorted(set(self.seen.values()))
        lines = [
            f"threadwise watch: the script ran {elapsed:.2f} s and exited with {exit_code}; "
            f"{len(names)} threads seen (at most {self.peak_threads} at once)",
            "  threads: " + ", ".join(names),
        ]
        waits = sorted(self.longest_waits.items(), key=lambda kv: -kv[1])[:5]
        if waits:
            lines.append("  longest blocked waits:")
            for (name, what), seconds in waits:
                lines.append(f"    {seconds:7.2f} s  {name}: {what}")
        return "\n".join(lines)


class _Display:
    """Redraws the thread table: rich when available and stderr is a terminal, else text."""

    def __init__(self, interval: float, plain: bool) -> None:
        self.interval = interval
        self.summary = _Summary()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="threadwise-watch", daemon=True)
        self._live: Any = None
        self._plain = plain
        if not plain:
            try:
                from rich.console import Console
                from rich.live import Live

                console = Console(stderr=True)
                if console.is_terminal:
                    self._live = Live(
                        console=console,
                        auto_refresh=False,
                        # The script's output goes above the table, not under its redraws.
                        redirect_stdout=True,
                        redirect_stderr=True,
                        transient=False,
                    )
            except ImportError:
                self._live = None

    def start(self) -> None:
        if self._live is not None:
            self._live.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._draw()
        if self._live is not None:
            self._live.stop()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._draw()

    def _draw(self) -> None:
        me = self._thread.ident  # the sampler itself is not part of the script
        infos = [info for info in threads() if info.ident != me]
        self.summary.record(infos)
        if self._live is not None:
            self._live.update(_rich_table(infos), refresh=True)
        elif self._plain:
            sys.stderr.write(format_table(infos) + "\n\n")
            sys.stderr.flush()


def _rich_table(infos: list[ThreadInfo]) -> Any:
    from rich.table import Table

    table = Table(title="threadwise watch", expand=False)
    for column in ("thread", "state", "for s", "task", "group", "blocked on"):
        table.add_column(column, justify="right" if column == "for s" else "left")
    colours = {State.RUNNING: "green", State.BLOCKED: "yellow", State.FAILED: "red"}
    for info in infos:
        colour = colours.get(info.state, "white")
        table.add_row(
            info.name + (" (daemon)" if info.daemon else ""),
            f"[{colour}]{info.state.name}[/]",
            f"{info.running_for:.1f}",
            info.task or "",
            info.group or "",
            info.blocked_on or "",
        )
    return table


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "watch",
        help="run a Python script with a live table of its threads",
        # Plain words: the module docstring is reST, which --help would show raw.
        description="Run a Python script (or -m MODULE) as python would, with a live table of "
        "its threads on standard error and a summary of them when it ends. Exit code: the "
        "script's.",
    )
    parser.add_argument(
        "--interval",
        type=number(float, "a positive number of seconds", minimum=0.0, inclusive=False),
        default=0.5,
        help="seconds between redraws (default 0.5)",
    )
    parser.add_argument(
        "--plain", action="store_true", help="print the table as text instead of redrawing"
    )
    parser.add_argument("-m", dest="module", help="run a module (like python -m)")
    parser.add_argument("script", nargs="?", help="the script to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.module is None and args.script is None:
        print("threadwise watch: give a script or -m MODULE", file=sys.stderr)
        return 2
    if args.module is not None and args.script is not None:
        args.args = [args.script, *args.args]
    target = str(args.module if args.module is not None else args.script)
    if args.module is None and not os.path.exists(target):
        print(f"threadwise watch: no such script: {target}", file=sys.stderr)
        return 2
    display = _Display(args.interval, args.plain)
    saved_argv = sys.argv[:]
    saved_path0 = sys.path[0] if sys.path else None
    sys.argv = [target, *args.args]
    if args.module is None:
        sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
    started = time.monotonic()
    exit_code = 0
    display.start()
    try:
        if args.module is not None:
            runpy.run_module(args.module, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(target, run_name="__main__")
    except SystemExit as exc:
        exit_code = _code_of(exc)
    except KeyboardInterrupt:
        display.stop()
        print(display.summary.render(time.monotonic() - started, 130), file=sys.stderr)
        raise
    except BaseException:
        traceback.print_exc()
        exit_code = 1
    finally:
        sys.argv = saved_argv
        if args.module is None and sys.path and saved_path0 is not None:
            sys.path.pop(0)
    display.stop()
    print(display.summary.render(time.monotonic() - started, exit_code), file=sys.stderr)
    return exit_code


def _code_of(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1
