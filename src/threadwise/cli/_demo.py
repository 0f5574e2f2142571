"""``threadwise demo``: real downloads from a local server, one at a time and then in parallel.

An embedded HTTP server on 127.0.0.1 serves generated files, answering each request after a
latency and sending each response at a limited bandwidth, as a distant server would. The same
files are downloaded twice with ``threadwise.download``: with one worker, then with N; both
runs verify every file's sha256, and a table compares the times with what the model allows.

The model: a file takes ``latency + size / bandwidth`` seconds on one connection, so the
sequential run ideally takes ``files`` times that, and N workers ``ceil(files / N)`` times that.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

from threadwise._typing import TYPE_CHECKING, TextIO

from ._args import number, size

if TYPE_CHECKING:
    from threadwise.download import DemoServer, DownloadReport

DEFAULT_FILES = 24
DEFAULT_SIZE = 256 * 1024
DEFAULT_LATENCY = 0.3
DEFAULT_BANDWIDTH = 1024 * 1024
DEFAULT_WORKERS = 12

# Sanity limits: the server keeps every file in memory, twice over while it generates them.
MAX_FILES = 10_000
MAX_TOTAL = 1 << 30
MAX_WORKERS = 1_000


@dataclass(frozen=True)
class Model:
    """The ideal times: every file takes ``latency + size / bandwidth`` on one connection."""

    files: int
    size: int
    latency: float
    bandwidth: float  # bytes per second per connection; 0: unthrottled (transfer time ignored)
    workers: int

    @property
    def per_file(self) -> float:
        transfer = self.size / self.bandwidth if self.bandwidth else 0.0
        return self.latency + transfer

    @property
    def rounds(self) -> int:
        """How many files each of the busiest workers downloads, one after the other."""
        return math.ceil(self.files / self.workers)

    @property
    def sequential(self) -> float:
        return self.files * self.per_file

    @property
    def parallel(self) -> float:
        return self.rounds * self.per_file

    @property
    def speedup(self) -> float:
        return self.sequential / self.parallel


def file_names(files: int) -> list[str]:
    return [f"file-{i:03d}.bin" for i in range(1, files + 1)]


def verify(report: DownloadReport, dest: str, sha256: dict[str, str]) -> list[str]:
    """Problems with a run: files that did not finish, and files on disk whose sha256 is not
    the served one (the downloader already checked; this reads them back)."""
    problems = []
    for f in report.files:
        name = f.url.rsplit("/", 1)[-1]
        if f.status != "done":
            problems.append(f"{name}: {f.status}: {f.error}")
            continue
        path = os.path.join(dest, name)
        try:
            with open(path, "rb") as file:
                digest = hashlib.file_digest(file, "sha256").hexdigest()
        except OSError as exc:
            problems.append(f"{name}: {exc}")
            continue
        if digest != sha256[name]:
            problems.append(f"{name}: sha256 {digest} instead of {sha256[name]}")
    return problems


def _run(
    title: str,
    urls: list[str],
    dest: str,
    workers: int,
    checksums: dict[str, str],
) -> tuple[DownloadReport, float]:
    from threadwise.download import download

    from ._display import DownloadDisplay

    display = DownloadDisplay.choose(title, quiet=False)
    start = time.perf_counter()
    with display:
        report = download(
            urls,
            dest,
            workers=workers,
            per_host=workers,
            retries=2,
            timeout=30.0,
            checksums=checksums,
            progress=display.callback,
        )
    return report, time.perf_counter() - start


def _describe(model: Model, base_url: str) -> str:
    from ._display import human_bytes

    speed = (
        f"at {human_bytes(model.bandwidth)}/s per connection" if model.bandwidth else "unthrottled"
    )
    return (
        f"threadwise demo: {model.files} files of {human_bytes(model.size)} from a local server "
        f"({base_url})\nthat answers each request after {model.latency:g} s and sends {speed}."
    )


def _table(
    out: TextIO,
    model: Model,
    sequential: float,
    parallel: float,
) -> None:
    from ._display import have_rich, human_bytes

    speedup = sequential / parallel
    rows = [
        ("files", f"{model.files}", ""),
        ("bytes", human_bytes(model.files * model.size), f"{model.files * model.size:,} bytes"),
        ("workers", f"{model.workers}", ""),
        ("sequential time", f"{sequential:.2f} s", f"ideal {model.sequential:.2f} s"),
        ("parallel time", f"{parallel:.2f} s", f"ideal {model.parallel:.2f} s"),
        ("speedup", f"{speedup:.1f}x", ""),
        ("ideal speedup", f"{model.speedup:.1f}x", "sequential ideal / parallel ideal"),
        ("speedup / ideal", f"{speedup / model.speedup:.2f}", ""),
    ]
    if have_rich():
        from rich import box
        from rich.console import Console
        from rich.table import Table

        table = Table(box=box.SIMPLE, show_header=False, show_edge=False)
        table.add_column()
        table.add_column(justify="right", style="bold")
        table.add_column(style="dim")
        for row in rows:
            table.add_row(*row)
        Console(file=out).print(table)
    else:
        for label, value, note in rows:
            print(f"  {label:<16} {value:>10}  {note}".rstrip(), file=out)
    if model.bandwidth:
        takes = (
            f"{model.latency:g} s + {human_bytes(model.size)} / {human_bytes(model.bandwidth)}/s"
            f" = {model.per_file:.3f} s"
        )
    else:
        takes = f"{model.latency:g} s (its transfer time is not counted: unthrottled)"
    rounds = f"{model.rounds} round{'s' if model.rounds != 1 else ''}"
    print(
        f"Ideal: each file takes {takes};\n"
        f"one at a time {model.files} x that, with {model.workers} workers {rounds} of it.",
        file=out,
    )


def run(args: argparse.Namespace, output: TextIO | None = None) -> int:
    """Run the demo with the parsed options; return the exit code."""
    out: TextIO = sys.stdout if output is None else output
    from ._display import INSTALL_HINT, missing_client

    missing = missing_client()
    if missing is not None:
        print(
            f"threadwise demo needs {missing}, which is not installed: {INSTALL_HINT}",
            file=sys.stderr,
        )
        return 2
    from threadwise.download import DemoServer

    model = Model(
        files=args.files,
        size=args.size,
        latency=args.latency,
        bandwidth=args.bandwidth,
        workers=args.workers,
    )
    if model.files * model.size > MAX_TOTAL:
        parser: argparse.ArgumentParser = args.demo_parser
        parser.print_usage(sys.stderr)
        print(
            f"{parser.prog}: error: --files x --size must be at most 1 GiB, "
            f"got {model.files * model.size:,} bytes",
            file=sys.stderr,
        )
        return 2
    server: DemoServer = DemoServer(latency=model.latency, bandwidth=model.bandwidth or None)
    with server, tempfile.TemporaryDirectory(prefix="threadwise-demo-") as folder:
        names = file_names(model.files)
        sha256 = {name: server.add(name, model.size).sha256 for name in names}
        urls = [server.url(name) for name in names]
        checksums = {url: f"sha256:{sha256[name]}" for url, name in zip(urls, names, strict=True)}
        print(_describe(model, server.base_url) + "\n", file=out, flush=True)

        print("Sequential: one file at a time (workers=1)", file=out, flush=True)
        seq_dest = os.path.join(folder, "sequential")
        seq_report, seq_time = _run("sequential", urls, seq_dest, 1, checksums)

        print(
            f"\nthreadwise: up to {model.workers} files at a time (workers={model.workers})",
            file=out,
            flush=True,
        )
        par_dest = os.path.join(folder, "parallel")
        par_report, par_time = _run("threadwise", urls, par_dest, model.workers, checksums)

        problems = [f"sequential {p}" for p in verify(seq_report, seq_dest, sha256)]
        problems += [f"parallel {p}" for p in verify(par_report, par_dest, sha256)]
        print(file=out)
        _table(out, model, seq_time, par_time)
        print(file=out)
        if problems:
            print(f"FAILED: {len(problems)} downloads are missing or wrong:", file=out)
            for problem in problems:
                print(f"  {problem}", file=out)
            return 1
        print(
            f"All {2 * model.files} checksums verified ({model.files} files x 2 runs, sha256).",
            file=out,
        )
        return 0


def _int(what: str, maximum: int) -> Callable[[str], int]:
    parse = number(int, what, minimum=0, inclusive=False, maximum=maximum)
    return lambda text: int(parse(text))


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help="download files from a local server, sequentially then in parallel",
        description="Start an HTTP server on 127.0.0.1 serving generated files with a latency "
        "and a per-connection bandwidth, download them one at a time and then with threadwise, "
        "verify every sha256 and compare the times with the ideal ones.",
    )
    parser.add_argument(
        "--files",
        type=_int("a positive integer up to 10000", MAX_FILES),
        default=DEFAULT_FILES,
        metavar="N",
        help=f"number of files (default: {DEFAULT_FILES})",
    )
    parser.add_argument(
        "--size",
        type=size("a positive size such as 16384, 64K or 1M", zero=False, maximum=MAX_TOTAL),
        default=DEFAULT_SIZE,
        metavar="BYTES",
        help="size of each file; K, M and G suffixes are powers of 1024 (default: 256K)",
    )
    parser.add_argument(
        "--latency",
        type=number(
            float, "a positive number of seconds", minimum=0.0, inclusive=False, maximum=60
        ),
        default=DEFAULT_LATENCY,
        metavar="S",
        help=f"seconds before the server answers each request (default: {DEFAULT_LATENCY})",
    )
    parser.add_argument(
        "--bandwidth",
        type=size("a size per second such as 1M, or 0", zero=True),
        default=DEFAULT_BANDWIDTH,
        metavar="BYTES",
        help="bytes per second of each connection, with K/M/G suffixes; 0: unthrottled "
        "(default: 1M)",
    )
    parser.add_argument(
        "--workers",
        type=_int("a positive integer up to 1000", MAX_WORKERS),
        default=DEFAULT_WORKERS,
        metavar="N",
        help=f"parallel downloads in the threadwise run (default: {DEFAULT_WORKERS})",
    )
    parser.set_defaults(handler=run, demo_parser=parser)
    return parser
