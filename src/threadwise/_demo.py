"""``threadwise demo``: simulated downloads, one after the other and then concurrently.

Each "download" sleeps for the simulated latency (with the cancellable ``threadwise.sleep``) and
returns fake bytes with their sha256, so every result can be checked against what was expected.
Self-contained on purpose: a real HTTP downloader against an embedded server replaces it later.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO, TypeVar

import threadwise

Number = TypeVar("Number", int, float)

DEFAULT_FILES = 12
DEFAULT_LATENCY = 0.5


@dataclass(frozen=True)
class Download:
    """The outcome of one simulated download."""

    url: str
    data: bytes
    sha256: str


def file_url(index: int) -> str:
    """The simulated URL of file number ``index`` (from 1)."""
    return f"https://downloads.example/file-{index:03d}.bin"


def payload(url: str) -> bytes:
    """The fake content served for ``url``: 8 to 64 KiB, deterministic per URL."""
    seed = hashlib.sha256(url.encode()).digest()
    size = 8 * 1024 + int.from_bytes(seed[:2], "big") % (56 * 1024)
    return (seed * (size // len(seed) + 1))[:size]


def expected_sha256(url: str) -> str:
    """The sha256 that a correct download of ``url`` has."""
    return hashlib.sha256(payload(url)).hexdigest()


def fetch(url: str, latency: float) -> Download:
    """Simulate downloading ``url``: wait ``latency`` seconds, return the bytes and their hash."""
    threadwise.sleep(latency)
    data = payload(url)
    return Download(url, data, hashlib.sha256(data).hexdigest())


class _Progress:
    """Prints one line per finished download; safe to call from several threads."""

    def __init__(self, total: int, out: TextIO) -> None:
        self._total = total
        self._out = out
        self._lock = threading.Lock()
        self._done = 0
        self._start = time.perf_counter()

    def finished(self, download: Download) -> None:
        elapsed = time.perf_counter() - self._start
        name = download.url.rsplit("/", 1)[-1]
        with self._lock:
            self._done += 1
            width = len(str(self._total))
            print(
                f"  [{self._done:>{width}}/{self._total}] {name}"
                f"  {len(download.data) / 1024:5.1f} KiB"
                f"  sha256 {download.sha256[:12]}"
                f"  at {elapsed:6.2f} s",
                file=self._out,
                flush=True,
            )


def _fetch_and_report(url: str, latency: float, progress: _Progress) -> Download:
    download = fetch(url, latency)
    progress.finished(download)
    return download


def download_sequentially(urls: Sequence[str], latency: float, out: TextIO) -> list[Download]:
    """Download ``urls`` one after the other in the calling thread."""
    progress = _Progress(len(urls), out)
    return [_fetch_and_report(url, latency, progress) for url in urls]


def download_concurrently(
    urls: Sequence[str], latency: float, workers: int | None, out: TextIO
) -> list[Download]:
    """Download ``urls`` concurrently in a TaskGroup; results are in the order of ``urls``."""
    progress = _Progress(len(urls), out)
    with threadwise.TaskGroup(name="downloads", max_workers=workers) as g:
        tasks = [g.spawn(_fetch_and_report, url, latency, progress) for url in urls]
    return [t.result() for t in tasks]


def is_correct(url: str, download: Download) -> bool:
    """Whether ``download`` is ``url``'s, with the expected content and a matching hash."""
    digest = hashlib.sha256(download.data).hexdigest()
    return download.url == url and digest == download.sha256 == expected_sha256(url)


def check(urls: Sequence[str], downloads: Sequence[Download]) -> list[str]:
    """Return the URLs whose download is missing, out of order, or has the wrong content."""
    if len(downloads) != len(urls):
        return list(urls)
    return [url for url, d in zip(urls, downloads, strict=True) if not is_correct(url, d)]


def ideal_speedup(files: int, workers: int | None) -> float:
    """The best possible speedup: files divided by the number of rounds the workers need."""
    threads = files if workers is None else min(files, workers)
    return files / math.ceil(files / threads)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run the demo with the parsed options; return the exit code."""
    out = sys.stdout if out is None else out
    files: int = args.files
    latency: float = args.latency
    workers: int | None = args.workers
    urls = [file_url(i) for i in range(1, files + 1)]
    threads = files if workers is None else min(files, workers)
    how = "one thread per file" if workers is None else f"at most {workers} threads"

    print(f"Simulated download of {files} files, {latency:g} s latency each.\n", file=out)

    print("Sequential: one after the other", file=out)
    start = time.perf_counter()
    sequential = download_sequentially(urls, latency, out)
    sequential_time = time.perf_counter() - start

    print(f"\nConcurrent: a TaskGroup with {how}", file=out)
    start = time.perf_counter()
    parallel = download_concurrently(urls, latency, workers, out)
    parallel_time = time.perf_counter() - start

    bad = check(urls, sequential) + check(urls, parallel)
    rows = [
        ("files", f"{files}"),
        ("threads", f"{threads}"),
        ("sequential time", f"{sequential_time:.2f} s"),
        ("parallel time", f"{parallel_time:.2f} s"),
        ("speedup", f"{sequential_time / parallel_time:.1f}x"),
        ("ideal speedup", f"{ideal_speedup(files, workers):.1f}x"),
    ]
    print(file=out)
    for label, value in rows:
        print(f"  {label:<16}{value:>10}", file=out)
    print(file=out)
    if bad:
        print(f"FAILED: {len(bad)} downloads do not match: {', '.join(bad)}", file=out)
        return 1
    print(f"All {2 * files} downloads match their expected sha256.", file=out)
    return 0


def _positive(kind: Callable[[str], Number], what: str) -> Callable[[str], Number]:
    """An argparse ``type`` that accepts only positive, finite values of ``kind``."""

    def parse(text: str) -> Number:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help="simulated downloads, sequential then concurrent, with the speedup",
        description="Simulate downloading files, first one after the other, then concurrently "
        "in a threadwise.TaskGroup, and compare the times. Every result is checked.",
    )
    parser.add_argument(
        "--files",
        type=_positive(int, "a positive integer"),
        default=DEFAULT_FILES,
        metavar="N",
        help=f"number of files to download (default: {DEFAULT_FILES})",
    )
    parser.add_argument(
        "--latency",
        type=_positive(float, "a positive number of seconds"),
        default=DEFAULT_LATENCY,
        metavar="S",
        help=f"simulated time each download takes, in seconds (default: {DEFAULT_LATENCY})",
    )
    parser.add_argument(
        "--workers",
        type=_positive(int, "a positive integer"),
        default=None,
        metavar="N",
        help="maximum number of threads for the concurrent run (default: one per file)",
    )
    parser.set_defaults(handler=run)
    return parser
