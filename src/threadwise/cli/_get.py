"""``threadwise get``: download URLs in parallel, with a live display and a summary at the end.

Only argparse is imported to build the parser: the downloader, urllib3 and rich load when a
download runs, so ``threadwise get --help`` starts quickly. Options the user did not give are not
passed to ``download()``, whose defaults stay the one source of truth.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable, Iterable

from threadwise._typing import TYPE_CHECKING, Any, TextIO

from ._args import header, number, size

if TYPE_CHECKING:
    from threadwise.download import DownloadReport, Request

    from ._inputfile import Entry

INSECURE = (
    "threadwise get: WARNING: --no-check-certificate: TLS certificates are NOT checked; "
    "anyone on the network path can read and change these downloads"
)


class UsageError(Exception):
    """Bad input found after parsing: the message names the option and the value."""


# -- the URLs and their per-URL options ----------------------------------------------------------
def read_urls(lines: Iterable[str], source: str = "<input>") -> list[str]:
    """The URLs of a list (blank lines, ``#`` comments and per-URL options are skipped)."""
    from ._inputfile import read_entries

    return [entry.url for entry in read_entries(lines, source)]


def _entries(args: argparse.Namespace) -> list[Entry]:
    from ._inputfile import Entry, InputError, read_entries

    urls: list[str] = args.urls
    names: list[str] = args.names or []
    if len(names) > len(urls):
        raise UsageError(
            f"-O given {len(names)} times for {len(urls)} URL{_s(len(urls))} on the command "
            f"line: the Nth -O names the Nth URL"
        )
    entries = [Entry(url=url, where="the command line") for url in urls]
    for entry, name in zip(entries, names, strict=False):
        if name == "-":
            raise UsageError("-O -: writing to standard output is not supported")
        folder, entry.name = os.path.split(name)
        if not entry.name:
            raise UsageError(f"-O {name}: expected a file name, got a folder")
        entry.dir = folder or None
    for entry, name in zip(entries, names, strict=False):
        entry.where = f"-O {name}"
    for source in args.input or []:
        try:
            if source == "-":
                listed = read_entries(sys.stdin, "<stdin>")
            else:
                with open(source, encoding="utf-8") as f:
                    listed = read_entries(f, source)
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"-i {source}: cannot read the URL list: {_reason(exc)}") from None
        except InputError as exc:
            raise UsageError(f"-i {exc}") from None
        for entry in listed:
            entry.where = f"-i {entry.where}"
        entries.extend(listed)
    return entries


def _requests(entries: list[Entry]) -> list[str | Request]:
    """Plain URLs stay strings; a URL with options of its own becomes a ``Request``."""
    from threadwise.download import Request

    requests: list[str | Request] = []
    for entry in entries:
        if (
            entry.name is None
            and entry.dir is None
            and entry.checksum is None
            and not entry.headers
        ):
            requests.append(entry.url)
            continue
        try:
            requests.append(
                Request(
                    entry.url,
                    name=entry.name,
                    dir=entry.dir,
                    checksum=entry.checksum,
                    headers=entry.headers or None,
                )
            )
        except (TypeError, ValueError) as exc:
            raise UsageError(f"{entry.where}: {entry.url}: {exc}") from None
    return requests


# -- options for download() ------------------------------------------------------------------------
def _auth(args: argparse.Namespace) -> tuple[str, str] | None:
    if args.user is None:
        if args.password is not None:
            raise UsageError("--password needs --user")
        return None
    user, colon, password = args.user.partition(":")
    if args.password is not None:
        password = args.password
    elif not colon:
        raise UsageError(
            f"--user {args.user}: no password; give --password PASSWORD or --user USER:PASSWORD"
        )
    if not user:
        raise UsageError(f"--user {args.user!r}: the user name is empty")
    return user, password


def _cookies(path: str) -> Any:
    """The Netscape cookies file at ``path``, loaded now so a bad file fails before starting."""
    import http.cookiejar

    jar = http.cookiejar.MozillaCookieJar(path)
    try:
        # Session cookies (no expiry) are what a browser export holds for a logged-in session.
        jar.load(ignore_discard=True, ignore_expires=True)
    except (OSError, http.cookiejar.LoadError, UnicodeDecodeError) as exc:
        raise UsageError(f"--load-cookies {path}: {_reason(exc)}") from None
    for cookie in jar:
        # curl and browsers' exports write 0 for a session cookie; Python before 3.13 reads
        # it as expired in 1970 and would never send it.
        if cookie.expires == 0:
            cookie.expires = None
            cookie.discard = True
    return jar


def _netrc_file(path: str) -> str:
    import netrc

    try:
        netrc.netrc(path)
    except (OSError, netrc.NetrcParseError, UnicodeDecodeError) as exc:
        raise UsageError(f"--netrc-file {path}: {_reason(exc)}") from None
    return path


def _readable(option: str, path: str) -> str:
    if not os.path.isfile(path):
        raise UsageError(f"{option} {path}: no such file")
    return path


def _options(args: argparse.Namespace, log: Callable[[str], None] | None) -> dict[str, Any]:
    """The keyword arguments of ``download()`` for what was given on the command line."""
    given = {
        "workers": args.workers,
        "per_host": args.per_host,
        "retries": args.retries,
        "timeout": args.timeout,
        "retry_wait": args.retry_wait,
        "max_retry_after": args.max_retry_after,
        "split": args.split,
        "min_split_size": args.min_split_size,
        "lowest_speed_time": args.lowest_speed_time,
        "user_agent": args.user_agent,
        "no_proxy": args.no_proxy_for,
        "proxy": args.proxy,
    }
    options: dict[str, Any] = {key: value for key, value in given.items() if value is not None}
    # Rates of 0 mean "no limit", as in aria2 and wget.
    for key, rate in (
        ("limit_rate", args.limit_rate),
        ("limit_rate_per_file", args.limit_rate_per_file),
        ("lowest_speed_limit", args.lowest_speed_limit),
    ):
        if rate:
            options[key] = rate
    flags = {
        "resume": args.resume,
        "timestamping": args.timestamping,
        "remote_time": args.remote_time,
        "dry_run": args.dry_run,
        "verify": args.verify,
        "compressed": args.compressed,
        "verbose": args.verbose,
    }
    defaults = {"resume": True, "remote_time": True, "verify": True}
    for key, value in flags.items():
        if value != defaults.get(key, False):
            options[key] = value
    if args.no_proxy:
        if args.proxy is not None:
            raise UsageError(f"--proxy {args.proxy} and --no-proxy contradict each other")
        options["proxy"] = False
    if args.proxy is not None and "://" not in args.proxy:
        raise UsageError(f"--proxy {args.proxy}: expected a URL such as http://host:3128")
    if args.headers:
        options["headers"] = dict(args.headers)
    auth = _auth(args)
    if auth is not None:
        options["auth"] = auth
    if args.netrc_file is not None:
        options["netrc"] = _netrc_file(args.netrc_file)
    elif args.netrc:
        options["netrc"] = True
    if args.load_cookies is not None:
        options["cookies"] = _cookies(args.load_cookies)
    if args.ca_certificate is not None:
        options["ca_certificate"] = _readable("--ca-certificate", args.ca_certificate)
    if args.checksums is not None:
        options["checksums"] = args.checksums
    if log is not None:
        options["log"] = log
    return options


class _Log:
    """``--log FILE`` / ``-v``: the downloader's event lines, written whole under a lock (they
    come from many download threads)."""

    def __init__(self, stream: TextIO, *, close: bool) -> None:
        self._stream = stream
        self._close = close
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            self._stream.write(line.rstrip("\n") + "\n")
            self._stream.flush()

    def close(self) -> None:
        if self._close:
            self._stream.close()


def _open_log(args: argparse.Namespace) -> _Log | None:
    if args.log is not None:
        try:
            stream = open(args.log, "w", encoding="utf-8")  # noqa: SIM115 - closed by _Log.close
        except OSError as exc:
            raise UsageError(f"--log {args.log}: {_reason(exc)}") from None
        return _Log(stream, close=True)
    if args.verbose:
        return _Log(sys.stderr, close=False)
    return None


# -- the command --------------------------------------------------------------------------------
def _usage_error(args: argparse.Namespace, message: str) -> int:
    parser: argparse.ArgumentParser = args.get_parser
    parser.print_usage(sys.stderr)
    print(f"{parser.prog}: error: {message}", file=sys.stderr)
    return 2


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _write_json(report: DownloadReport, target: str) -> str | None:
    """Write the report as JSON to ``target`` (``-``: stdout); return an error, if any."""
    import json  # only when a report is written: `get --help` need not load it

    text = json.dumps(report.to_json(), indent=2) + "\n"
    if target == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return None
    try:
        with open(target, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        return f"cannot write the JSON report to {target}: {_reason(exc)}"
    return None


def take_extra(args: argparse.Namespace, extra: list[str]) -> list[str]:
    """URLs that argparse left over (``-O a URL1 -O b URL2``: a positional list is read once);
    returns what is still not understood."""
    urls: list[str] = args.urls
    rest = []
    for word in extra:
        if word.startswith("-"):
            rest.append(word)
        else:
            urls.append(word)
    return rest


def run_get(args: argparse.Namespace) -> int:
    """Run ``threadwise get``; return the exit code."""
    from ._display import INSTALL_HINT, missing_client

    missing = missing_client()
    if missing is not None:
        print(
            f"threadwise get needs {missing}, which is not installed: {INSTALL_HINT}",
            file=sys.stderr,
        )
        return 2
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        return _usage_error(args, f"-o {args.output}: not a directory")
    log = None
    try:
        entries = _entries(args)
        if not entries:
            raise UsageError("no URLs given (pass them as arguments or with -i FILE)")
        if args.checksums is not None:
            from threadwise.download import load_checksums

            try:
                load_checksums(args.checksums)
            except (OSError, ValueError, UnicodeDecodeError) as exc:
                raise UsageError(f"--checksums {args.checksums}: {_reason(exc)}") from None
        requests = _requests(entries)
        log = _open_log(args)
        options = _options(args, log)
    except UsageError as exc:
        if log is not None:
            log.close()
        return _usage_error(args, str(exc))
    try:
        return _download(args, requests, options)
    finally:
        if log is not None:
            log.close()


def _download(
    args: argparse.Namespace, requests: list[str | Request], options: dict[str, Any]
) -> int:
    import warnings

    from threadwise.download import DownloadInterrupted, download

    from ._display import INSTALL_HINT, DownloadDisplay, have_rich, isatty, print_summary

    if not args.verify:
        print(INSECURE, file=sys.stderr, flush=True)
    # The summary goes to stdout, unless stdout carries the JSON report.
    out = sys.stderr if args.json == "-" else sys.stdout
    # -v without --log writes its lines to stderr: a live display there would fight them.
    display = DownloadDisplay.choose(
        "spider" if args.dry_run else "get",
        quiet=args.quiet,
        plain=args.verbose and args.log is None,
    )
    if display.mode == "lines" and isatty(display.stream) and not have_rich():
        print(f"threadwise: for a live progress display, {INSTALL_HINT}", file=sys.stderr)
    try:
        with display, warnings.catch_warnings():
            if not args.verify:
                # We said so loudly above, once: not a warning per request from urllib3.
                from urllib3.exceptions import InsecureRequestWarning

                from threadwise.download import InsecureWarning

                warnings.simplefilter("ignore", InsecureWarning)
                warnings.simplefilter("ignore", InsecureRequestWarning)
            report = download(requests, args.output, progress=display.callback, **options)
    except DownloadInterrupted as interrupted:
        report = interrupted.report
        if args.json is not None:
            _write_json(report, args.json)
        if not args.quiet:
            print_summary(report, out, dry_run=args.dry_run)
        finished = report.count("done") + report.count("skipped")
        again = "the same command" if args.resume else "the same command without --no-resume"
        n = len(report.files)
        print(
            f"\ninterrupted: {finished} of {n} file{_s(n)} finished; partial "
            f"downloads are kept as .part files and {again} resumes them",
            file=sys.stderr,
        )
        return 130
    except (TypeError, ValueError) as exc:
        # An option the library refuses: its message names the keyword and the value.
        return _usage_error(args, str(exc))
    except OSError as exc:
        print(f"threadwise get: error: {_reason(exc)}", file=sys.stderr)
        return 1

    code = 0 if report.ok else 1
    if args.json is not None:
        error = _write_json(report, args.json)
        if error is not None:
            print(f"threadwise get: error: {error}", file=sys.stderr)
            code = 1
    if not args.quiet:
        print_summary(report, out, dry_run=args.dry_run)
    elif not report.ok:
        for f in report.failures():
            print(f"{f.status}: {f.url}: {f.error}", file=sys.stderr)
    for warning in report.warnings:
        print(f"threadwise get: warning: {warning}", file=sys.stderr)
    if not args.verify and not args.quiet:
        print(INSECURE, file=sys.stderr)
    return code


# -- the parser ---------------------------------------------------------------------------------
positive_int = number(int, "a positive integer", minimum=0, inclusive=False)
non_negative_int = number(int, "an integer >= 0", minimum=0, inclusive=True)
positive_float = number(float, "a positive number of seconds", minimum=0.0, inclusive=False)
non_negative_float = number(float, "a number of seconds >= 0", minimum=0.0, inclusive=True)
rate = size("a rate in bytes per second such as 500k or 2M, or 0 for none", zero=True)
positive_size = size("a positive size such as 64K or 8M", zero=False)


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register the ``get`` subcommand, its options grouped as wget2's help groups them."""
    parser = subparsers.add_parser(
        "get",
        help="download URLs in parallel, resumably, with a live display",
        description="Download URLs in parallel into a folder. Each file is written to "
        "NAME.part and renamed when complete (and verified, with --checksums); an interrupted "
        "run resumes its .part files. Sizes and rates take K, M and G suffixes (powers of "
        "1024): 500k, 2M. Exit code: 0 when every file is done or already complete, 1 when "
        "some failed, 2 for bad usage, 130 on Ctrl-C.",
    )
    parser.add_argument("urls", nargs="*", metavar="URL", help="URLs to download")
    # wget2's first group: where --help is.
    parser._optionals.title = "Startup"

    logging = parser.add_argument_group("Logging and input file")
    logging.add_argument(
        "-i",
        "--input-file",
        "--input",
        dest="input",
        action="append",
        metavar="FILE",
        help="read URLs from FILE ('-': standard input), one a line, each optionally followed "
        "by indented lines of its own options as in aria2: out=NAME, dir=DIR, "
        "checksum=sha-256=HEX, header=Name: value; blank lines and '#' comments are skipped; "
        "may be repeated",
    )

    logging.add_argument(
        "-q", "--quiet", action="store_true", help="no progress and no summary; errors only"
    )
    logging.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log each request and response too (to standard error, or to --log FILE)",
    )
    logging.add_argument(
        "--log",
        metavar="FILE",
        help="write a line per event (retries and why, redirects, skips, give-ups) to FILE",
    )
    logging.add_argument(
        "--json", metavar="REPORT", help="write the report as JSON to REPORT ('-': standard output)"
    )

    download = parser.add_argument_group("Download")
    download.add_argument(
        "-O",
        "--output-document",
        dest="names",
        action="append",
        metavar="NAME",
        help="save the Nth URL of the command line as NAME (a name, or a path under -o DIR); "
        "repeat it for each URL, as with curl's -o",
    )
    download.add_argument(
        "-j",
        "--workers",
        type=positive_int,
        metavar="N",
        help="connections in total (default: 16)",
    )
    download.add_argument(
        "--per-host",
        type=positive_int,
        metavar="N",
        help="connections to one host (default: the same as -j)",
    )
    download.add_argument(
        "-t",
        "--retries",
        type=non_negative_int,
        metavar="N",
        help="retries of a file after connection errors, timeouts, 429 and 5xx (default: 5)",
    )
    download.add_argument(
        "-T",
        "--timeout",
        type=positive_float,
        metavar="S",
        help="connect and read timeout in seconds (default: 30)",
    )
    download.add_argument(
        "--retry-wait",
        type=non_negative_float,
        metavar="S",
        help="seconds between retries (default: 0.5 s, doubling at each retry, jittered)",
    )
    download.add_argument(
        "--max-retry-after",
        type=non_negative_float,
        metavar="S",
        help="longest Retry-After wait to honour; a server asking for longer fails the file at "
        "once (default: 120)",
    )
    download.add_argument(
        "--limit-rate",
        type=rate,
        metavar="RATE",
        help="bytes per second for the whole batch, e.g. 500k or 2M (default: no limit)",
    )
    download.add_argument(
        "--limit-rate-per-file",
        "--max-download-limit",
        dest="limit_rate_per_file",
        type=rate,
        metavar="RATE",
        help="bytes per second for each file (default: no limit)",
    )
    download.add_argument(
        "-s",
        "--split",
        type=positive_int,
        metavar="N",
        help="most connections for one large file; 1: never split (default: 8)",
    )
    download.add_argument(
        "-k",
        "--min-split-size",
        type=positive_size,
        metavar="SIZE",
        help="split a file only into pieces of at least SIZE (default: 8M)",
    )
    download.add_argument(
        "--lowest-speed-limit",
        type=rate,
        metavar="RATE",
        help="abandon and retry a transfer slower than RATE over --lowest-speed-time "
        "(default: none)",
    )
    download.add_argument(
        "--lowest-speed-time",
        type=positive_float,
        metavar="S",
        help="the window of --lowest-speed-limit, in seconds (default: 30)",
    )
    download.add_argument(
        "-N",
        "--timestamping",
        action="store_true",
        help="download an existing file again only if the server's copy is newer",
    )
    download.add_argument(
        "--no-use-server-timestamps",
        dest="remote_time",
        action="store_false",
        help="do not set each file's modification time from the server's Last-Modified",
    )
    download.add_argument(
        "-c",
        "--continue",
        dest="resume",
        action="store_true",
        default=True,
        help="resume .part files left by an interrupted run (the default)",
    )
    download.add_argument(
        "--no-resume",
        dest="resume",
        action="store_false",
        help="start over instead of resuming .part files",
    )
    download.add_argument(
        "--checksums",
        metavar="FILE",
        help="a sha256sum-style manifest ('HEX  NAME' or 'sha256:HEX  NAME', NAME a file "
        "name, a path or a URL); a file that does not match is not kept",
    )
    download.add_argument(
        "--spider",
        "--dry-run",
        dest="dry_run",
        action="store_true",
        help="check that each URL answers and report its size; write nothing",
    )

    directories = parser.add_argument_group("Directories")
    directories.add_argument(
        "-o",
        "-P",
        "--output",
        "--directory-prefix",
        dest="output",
        default=".",
        metavar="DIR",
        help="folder to download into, created if needed (default: the current folder)",
    )

    http = parser.add_argument_group("HTTP")
    http.add_argument(
        "-H",
        "--header",
        dest="headers",
        action="append",
        type=header,
        metavar="'NAME: VALUE'",
        help="send this header with every request; may be repeated",
    )
    http.add_argument(
        "-U",
        "--user-agent",
        metavar="TEXT",
        help="the User-Agent header (default: threadwise/VERSION)",
    )
    http.add_argument(
        "--user",
        "--http-user",
        dest="user",
        metavar="USER[:PASSWORD]",
        help="HTTP basic authentication for every URL",
    )
    http.add_argument(
        "--password",
        "--http-password",
        dest="password",
        metavar="PASSWORD",
        help="the password for --user",
    )
    http.add_argument(
        "--netrc",
        action="store_true",
        help="take user and password for each host from $NETRC or ~/.netrc",
    )
    http.add_argument("--netrc-file", metavar="FILE", help="like --netrc, from FILE")
    http.add_argument(
        "--load-cookies",
        metavar="FILE",
        help="send the cookies of FILE (the Netscape cookies.txt format) where they apply",
    )
    http.add_argument(
        "--compressed",
        action="store_true",
        help="ask for a compressed transfer (gzip, deflate) and save the decoded file",
    )
    http.add_argument(
        "-x",
        "--proxy",
        metavar="URL",
        help="use this proxy for every URL (default: http_proxy, https_proxy and no_proxy "
        "from the environment)",
    )
    http.add_argument(
        "--no-proxy",
        action="store_true",
        help="connect directly, whatever the environment says",
    )
    http.add_argument(
        "--no-proxy-for",
        metavar="HOSTS",
        help="comma-separated hosts and domains reached directly (default: $no_proxy)",
    )

    https = parser.add_argument_group("HTTPS (TLS)")
    https.add_argument(
        "--ca-certificate",
        metavar="FILE",
        help="check servers against the CA certificates in FILE (PEM)",
    )
    https.add_argument(
        "--no-check-certificate",
        dest="verify",
        action="store_false",
        help="do not check servers' certificates (insecure: says so loudly)",
    )
    parser.set_defaults(handler=run_get, get_parser=parser, take_extra=take_extra)
    return parser
