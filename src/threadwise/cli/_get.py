"""``threadwise get``: download URLs in parallel, with a live display and a summary at the end.

Only argparse is imported to build the parser: the downloader and urllib3 load when a download
runs, so ``threadwise get --help`` starts quickly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ._args import number

if TYPE_CHECKING:
    from threadwise.download import DownloadReport


# -- the command --------------------------------------------------------------------------------
def read_urls(lines: Iterable[str]) -> list[str]:
    """One URL a line; blank lines and lines starting with ``#`` are skipped."""
    urls = []
    for line in lines:
        text = line.strip()
        if text and not text.startswith("#"):
            urls.append(text)
    return urls


def _collect_urls(args: argparse.Namespace) -> list[str]:
    urls: list[str] = list(args.urls)
    for source in args.input or []:
        if source == "-":
            urls.extend(read_urls(sys.stdin))
        else:
            with open(source, encoding="utf-8") as f:
                urls.extend(read_urls(f))
    return urls


def _usage_error(args: argparse.Namespace, message: str) -> int:
    parser: argparse.ArgumentParser = args.get_parser
    parser.print_usage(sys.stderr)
    print(f"{parser.prog}: error: {message}", file=sys.stderr)
    return 2


def _write_json(report: DownloadReport, target: str) -> str | None:
    """Write the report as JSON to ``target`` (``-``: stdout); return an error, if any."""
    text = json.dumps(report.to_json(), indent=2) + "\n"
    if target == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return None
    try:
        with open(target, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        return f"cannot write the JSON report to {target}: {exc.strerror or exc}"
    return None


def run_get(args: argparse.Namespace) -> int:
    """Run ``threadwise get``; return the exit code."""
    from ._display import (
        INSTALL_HINT,
        DownloadDisplay,
        have_rich,
        isatty,
        missing_client,
        print_summary,
    )

    missing = missing_client()
    if missing is not None:
        print(
            f"threadwise get needs {missing}, which is not installed: {INSTALL_HINT}",
            file=sys.stderr,
        )
        return 2
    from threadwise.download import DownloadInterrupted, download, load_checksums

    try:
        urls = _collect_urls(args)
    except (OSError, UnicodeDecodeError) as exc:
        return _usage_error(args, f"cannot read the URL list: {exc}")
    if not urls:
        return _usage_error(args, "no URLs given (pass them as arguments or with -i FILE)")
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        return _usage_error(args, f"-o {args.output}: not a directory")
    if args.checksums is not None:
        try:
            load_checksums(args.checksums)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            return _usage_error(args, f"--checksums {args.checksums}: {exc}")

    # The summary goes to stdout, unless stdout carries the JSON report.
    out = sys.stderr if args.json == "-" else sys.stdout
    display = DownloadDisplay.choose("get", quiet=args.quiet)
    if display.mode == "lines" and not have_rich() and isatty(display.stream):
        print(f"threadwise: for a live progress display, {INSTALL_HINT}", file=sys.stderr)
    try:
        with display:
            report = download(
                urls,
                args.output,
                workers=args.workers,
                per_host=args.per_host,
                retries=args.retries,
                timeout=args.timeout,
                resume=args.resume,
                checksums=args.checksums,
                progress=display.callback,
            )
    except DownloadInterrupted as interrupted:
        report = interrupted.report
        if args.json is not None:
            _write_json(report, args.json)
        if not args.quiet:
            print_summary(report, out)
        finished = report.count("done") + report.count("skipped")
        again = "the same command" if args.resume else "the same command without --no-resume"
        print(
            f"\ninterrupted: {finished} of {len(report.files)} files finished; partial "
            f"downloads are kept as .part files and {again} resumes them",
            file=sys.stderr,
        )
        return 130
    except OSError as exc:
        print(f"threadwise get: error: {exc}", file=sys.stderr)
        return 1

    code = 0 if report.ok else 1
    if args.json is not None:
        error = _write_json(report, args.json)
        if error is not None:
            print(f"threadwise get: error: {error}", file=sys.stderr)
            code = 1
    if not args.quiet:
        print_summary(report, out)
    elif not report.ok:
        for f in report.failures():
            print(f"{f.status}: {f.url}: {f.error}", file=sys.stderr)
    return code


positive_int = number(int, "a positive integer", minimum=0, inclusive=False)
non_negative_int = number(int, "an integer >= 0", minimum=0, inclusive=True)
positive_float = number(float, "a positive number", minimum=0.0, inclusive=False)


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register the ``get`` subcommand."""
    parser = subparsers.add_parser(
        "get",
        help="download URLs in parallel, resumably, with a live display",
        description="Download URLs in parallel into a folder. Each file is written to "
        "NAME.part and renamed when complete (and verified, with --checksums); an interrupted "
        "run resumes its .part files. Exit code: 0 when every file is done or already "
        "complete, 1 when some failed, 2 for bad usage, 130 on Ctrl-C.",
    )
    parser.add_argument("urls", nargs="*", metavar="URL", help="URLs to download")
    parser.add_argument(
        "-i",
        "--input",
        action="append",
        metavar="FILE",
        help="read URLs from FILE, one a line ('-': standard input); blank lines and "
        "'#' comments are skipped; may be repeated",
    )
    parser.add_argument(
        "-o",
        "--output",
        default=".",
        metavar="DIR",
        help="folder to download into, created if needed (default: the current folder)",
    )
    parser.add_argument(
        "-j",
        "--workers",
        type=positive_int,
        default=16,
        metavar="N",
        help="connections in total (default: 16)",
    )
    parser.add_argument(
        "--per-host",
        type=positive_int,
        default=8,
        metavar="N",
        help="connections to one host (default: 8)",
    )
    parser.add_argument(
        "--retries",
        type=non_negative_int,
        default=5,
        metavar="N",
        help="retries of a file after connection errors, timeouts, 429 and 5xx (default: 5)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=30.0,
        metavar="S",
        help="connect and read timeout in seconds (default: 30)",
    )
    parser.add_argument(
        "--checksums",
        metavar="FILE",
        help="a sha256sum-style manifest ('HEX  NAME' or 'sha256:HEX  NAME', NAME a file "
        "name or URL); a file that does not match is not kept",
    )
    parser.add_argument(
        "--no-resume",
        dest="resume",
        action="store_false",
        help="start over instead of resuming .part files",
    )
    parser.add_argument(
        "--json",
        metavar="REPORT",
        help="write the report as JSON to REPORT ('-': standard output)",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress and no summary; errors only"
    )
    parser.set_defaults(handler=run_get, get_parser=parser)
    return parser
