"""The parallel downloader: worker threads (one file each at a time), a lean HTTP client for
plain http and urllib3 for the rest, ``.part`` files that resume, retries, per-host limits,
safe names, checksums, bandwidth limits and parallel segments for large files."""

from __future__ import annotations

import _socket
import contextlib
import errno
import math
import os
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping

from .. import _validate
from .._cancel import checkpoint, on_cancel, sleep
from .._exceptions import Cancelled
from .._group import TaskGroup
from .._local import ThreadLocal
from .._sync import Semaphore
from .._typing import TYPE_CHECKING, Any
from .._version import __version__
from . import _fast, _small
from ._files import (
    CHUNK,
    _discard,
    _hash_file,
    _is_disk_error,
    _Meta,
    _write_all,
    load_checksums,
)
from ._http import (
    _Body,
    _describe_error,
    _range_start,
    _retry_after,
    _shutdown,
    _socket_of,
    _total_size,
    _will_close,
)
from ._names import NameRegistry, inside, name_from_content_disposition, name_from_url
from ._net import Network, load_cookie_jar, strip_userinfo
from ._rate import RateLimit
from ._report import DownloadReport, FileResult, plural
from ._request import Request, UrlParts, parse_checksum_option, split_url, url_problem

if TYPE_CHECKING:
    import http.cookiejar
    from typing import IO
    from urllib.parse import SplitResult

_loaded_errors: list[tuple[type[BaseException], ...]] = []
_loaded_lock = threading.Lock()


def _client_errors() -> tuple[type[BaseException], ...]:
    """What reading a response can raise besides OSError: looked up when it happens, so a
    download that never needs urllib3 never imports it (nor http.client)."""
    with _loaded_lock:
        return _client_errors_locked()


def _client_errors_locked() -> tuple[type[BaseException], ...]:
    if not _loaded_errors:
        import http.client

        errors: tuple[type[BaseException], ...] = (ValueError, http.client.HTTPException)
        try:
            from urllib3.exceptions import HTTPError
        except ImportError:  # pragma: no cover - the cli extra installs it
            pass
        else:
            errors += (HTTPError,)
        _loaded_errors.append(errors)
    return _loaded_errors[0]


_MAX_REDIRECTS = 10
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# Smaller files get no resume sidecar: restarting them costs less than writing one.
_RESUME_MIN = 1 << 20
# Bodies from this size on are spliced from the socket to the file (where os.splice exists).
_SPLICE_MIN = 4 << 20
# How often a segmented download's sidecar records its progress: after this many seconds, or
# sooner once a 32nd of the file arrived (but never more than 20 times a second). A kill -9
# then loses at most a few percent of what is on disk.
_SAVE_EVERY = 0.5
_SAVE_MIN_GAP = 0.05
_SAVE_FRACTION = 32
_XATTR_ETAG = "user.threadwise.etag"
_ENOSPC = (errno.ENOSPC, errno.EDQUOT)
_ENCODINGS = "gzip, deflate"
_XATTRS = hasattr(os, "setxattr")
_FALLOCATE = getattr(os, "posix_fallocate", None)


class InsecureWarning(UserWarning):
    """``download(verify=False)``: TLS certificates are not checked."""


class DownloadInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``download()``: ``report`` says what finished; ``.part`` files stay."""

    def __init__(self, report: DownloadReport) -> None:
        super().__init__("download interrupted")
        self.report = report


class _Retryable(Exception):
    def __init__(
        self, message: str, retry_after: float | None = None, *, refused: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.refused = refused


class _Fatal(Exception):
    pass


class _TooLong(_Fatal):
    """The body outgrew its Content-Length: the data cannot be trusted."""


class _Skip(Exception):
    """The file is already complete on disk."""


class _DiskFull(_Fatal):
    """No space left: the batch stops starting new files."""


class _Job:
    """One URL of the batch. A plain class with slots, not a dataclass: one is made per URL,
    and the ``dataclasses`` module alone costs more start-up than a hundred small files."""

    __slots__ = (
        "expected",
        "folder",
        "handed",
        "headers",
        "host",
        "index",
        "lock",
        "meta",
        "name",
        "named",
        "parts",
        "port",
        "problem",
        "root",
        "saved_at",
        "saved_bytes",
        "sidecar",
        "url",
    )

    def __init__(
        self,
        index: int,
        url: str,
        name: str,
        folder: str,  # the folder as given (for the report's paths)
        root: str,  # the same, resolved (for the checks that a name stays inside it)
        expected: tuple[str, str] | None,  # (algorithm, hex digest)
        headers: Mapping[str, str] | None,
        named: bool,  # the name was chosen by the caller: no Content-Disposition renaming
        host: str,
        problem: str | None = None,  # why the URL cannot be downloaded at all
        parts: UrlParts | SplitResult | None = None,  # split_url(url), made once
        port: int | None = None,  # parts.port, checked once
    ) -> None:
        self.index = index
        self.url = url
        self.name = name
        self.folder = folder
        self.root = root
        self.expected = expected
        self.headers = headers
        self.named = named
        self.host = host
        self.problem = problem
        self.parts = parts
        self.port = port
        self.meta: dict[str, Any] | None = None  # resume state kept across attempts of this run
        self.lock = threading.Lock()
        self.saved_at = 0.0
        self.saved_bytes = 0
        self.sidecar = False  # a .part.json exists for this job
        # A response the small-file loop got for this job and left to the threads (with the
        # connection slot it holds).
        self.handed: Any = None


class _Options:
    """The batch's settings, checked (see ``download()``)."""

    def __init__(
        self,
        *,
        workers: int,
        per_host: int,
        retries: int,
        timeout: float,
        resume: bool,
        backoff: float,
        retry_wait: float | None,
        split: int,
        min_split_size: int,
        timestamping: bool,
        remote_time: bool,
        lowest_speed_limit: float | None,
        lowest_speed_time: float,
        dry_run: bool,
        compressed: bool,
        max_retry_after: float,
        limit_rate_per_file: float | None,
        verbose: bool,
    ) -> None:
        self.workers = workers
        self.per_host = per_host
        self.retries = retries
        self.timeout = timeout
        self.resume = resume
        self.backoff = backoff
        self.retry_wait = retry_wait
        self.split = split
        self.min_split_size = min_split_size
        self.timestamping = timestamping
        self.remote_time = remote_time
        self.lowest_speed_limit = lowest_speed_limit
        self.lowest_speed_time = lowest_speed_time
        self.dry_run = dry_run
        self.compressed = compressed
        self.max_retry_after = max_retry_after
        self.limit_rate_per_file = limit_rate_per_file
        self.verbose = verbose


def _validator(meta: Mapping[str, Any]) -> str | None:
    value = meta.get("etag") or meta.get("last_modified")
    return value if isinstance(value, str) else None


def _plural(n: int, word: str, many: str | None = None) -> str:
    return plural(n, word, many)


class Downloader:
    """A batch download. Use ``download()``; this class holds the shared state."""

    def __init__(
        self,
        dest: str,
        options: _Options,
        network: Network,
        checksums: dict[str, tuple[str, str]],
        total_limit: RateLimit | None,
        log: Callable[[str], object] | None,
    ) -> None:
        self.dest = dest
        self.o = options
        self.net = network
        self.checksums = checksums
        self.total_limit = total_limit
        self.log = log
        self.names = NameRegistry(dest)
        self.connections = Semaphore(options.workers, name="connections")
        self._hosts: dict[str, Semaphore] = {}
        self._hosts_lock = threading.Lock()
        self._answered: set[str] = set()  # hosts that sent a response in this batch
        # Per host: the extra connection slots held by segmented downloads (beyond the one
        # slot each file holds), to tell how many files share the host's connections.
        self._extra_slots: dict[str, int] = {}
        self.buffers: ThreadLocal[bytearray] = ThreadLocal(lambda: bytearray(CHUNK))
        self.results: list[FileResult] = []
        self.warnings: list[str] = []
        self.disk_full = threading.Event()
        self._roots: dict[str, str] = {}
        self._listings: dict[str, frozenset[str]] = {}
        self._fast_ok = _fast.AVAILABLE and not options.compressed
        self._fast_pools: dict[tuple[str, int], _fast.Pool] = {}
        self._slow_hosts: set[str] = set()
        self._plain_block = "".join(f"{k}: {v}\r\n" for k, v in network.headers.items())
        o = options
        self._small_ok = (
            self._fast_ok
            and network.plain
            and not (o.dry_run or o.verbose or o.limit_rate_per_file or total_limit)
            and o.lowest_speed_limit is None
        )

    def run(self, jobs: list[_Job]) -> None:
        """Download ``jobs``. Plain-http files go to one thread driving kept-alive connections
        (``_small``), which hands back to worker threads what it does not finish itself; the
        rest go to the worker threads at once: each takes the next job when it is free (not
        ``threadwise.map``: no result goes back to this thread, so no wake-up of it per file).
        Ctrl-C here cancels the group: every worker stops."""
        loop = _small.SmallFiles(self, lambda job, error, response: None)
        threaded: list[_Job] = []
        for job in jobs:
            request = self._small_request(job)
            if request is None:
                threaded.append(job)
            else:
                loop.add(job, *request)
        queue: deque[tuple[_Job, Exception | None, Any]] = deque(
            (job, None, None) for job in threaded
        )
        try:
            self._run(loop, threaded, queue)
        finally:
            self._drop_queued(queue)

    def _run(
        self,
        loop: _small.SmallFiles,
        threaded: list[_Job],
        queue: deque[tuple[_Job, Exception | None, Any]],
    ) -> None:
        lock = threading.Lock()
        running = 0
        with TaskGroup(name="download") as group:

            def work() -> None:
                nonlocal running
                while True:
                    with lock:
                        if not queue:
                            running -= 1
                            return
                        job, error, response = queue.popleft()
                    self.fetch(job, error, response)

            def hand_over(job: _Job, error: Exception | None, response: Any) -> None:
                nonlocal running
                with lock:
                    queue.append((job, error, response))
                    if running >= self.o.workers:
                        return  # a busy worker takes it
                    running += 1
                group.spawn(work)

            loop.hand_over = hand_over
            with lock:
                running = min(self.o.workers, len(threaded))
            for _ in range(running):
                group.spawn(work)
            if loop.hosts:
                # In this thread: no thread to start, and no hand-over at the end. A cancel of
                # the group (a worker failed) wakes its wait; Ctrl-C raises in it.
                loop.run()

    def _drop_queued(self, queue: deque[tuple[_Job, Exception | None, Any]]) -> None:
        """After a cancel: the responses handed over that no worker took are closed."""
        while queue:
            job, _, response = queue.popleft()
            if response is not None:
                job.handed = response
                self.drop_handed(job)

    def _small_request(self, job: _Job) -> tuple[str, int, bytes] | None:
        """(host, port, request) when ``job`` can go to the small-file loop, else None: plain
        http without a proxy, credentials or per-URL headers, nothing of it on disk yet, no
        rate limits or speed checks (those watch a stream), no dry run."""
        if not self._small_ok or job.problem is not None or job.headers:
            return None
        url = job.url
        if not url.startswith("http://"):
            return None
        listing = self._listings.get(job.root, ())
        name = job.name
        if name in listing or name + ".part" in listing or name + ".part.json" in listing:
            return None
        parts = job.parts
        if parts is None or "@" in parts.netloc:  # credentials: the threaded path sends them
            return None
        port = job.port or 80
        host = job.host
        if not host or host in self._slow_hosts:
            return None
        if self.net.proxy_for(url) is not None:
            return None
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        header = f"[{host}]" if ":" in host else host
        if port != 80:
            header = f"{header}:{port}"
        try:
            request = (
                f"GET {target} HTTP/1.1\r\nHost: {header}\r\n{self._plain_block}\r\n"
            ).encode("latin-1")
        except UnicodeError:
            return None
        return host, port, request

    def use_urllib3_for(self, host: str) -> None:
        """The host sends bodies the lean client does not read (chunked, no length)."""
        with self._hosts_lock:
            self._slow_hosts.add(host.lower())
            pools = [key for key in self._fast_pools if key[0].lower() == host.lower()]
            dropped = [self._fast_pools.pop(key) for key in pools]
        for pool in dropped:
            pool.clear()

    @staticmethod
    def write_at(fd: int, data: memoryview, offset: int) -> None:
        _write_all(fd, data, offset)

    def note_answered(self, host: str) -> None:
        with self._hosts_lock:
            self._answered.add(host)

    def close(self) -> None:
        with self._hosts_lock:
            pools = list(self._fast_pools.values())
        for pool in pools:
            pool.clear()

    def _log(self, message: str) -> None:
        if self.log is not None:
            self.log(message)

    # -- planning --------------------------------------------------------------------------------
    def _root(self, folder: str) -> str:
        root = self._roots.get(folder)
        if root is None:
            os.makedirs(folder, exist_ok=True)
            root = self._roots[folder] = os.path.realpath(folder)
        return root

    def plan(self, items: list[str | Request], *, create: bool = True) -> list[_Job]:
        """A job per URL (a plain string: a URL without options of its own)."""
        jobs: list[_Job] = []
        seen: set[tuple[str, str, str | None]] = set()
        registries: dict[str, NameRegistry] = {self.dest: self.names}
        normal: dict[str, tuple[str, str]] = {}  # folder -> (normalised, prefix of paths)
        duplicates = 0
        for item in items:
            folder = self.dest
            if isinstance(item, str):
                url = item
                given_name = checksum = None
                headers = None
            else:
                url = item.url
                given_name, checksum, headers = item.name, item.checksum, item.headers
                if item.dir is not None:
                    folder = os.path.join(self.dest, os.fspath(item.dir))
            known = normal.get(folder)
            if known is None:
                known = normal[folder] = (os.path.normpath(folder), os.path.join(folder, ""))
            folder_key, prefix = known
            key = (url, folder_key, given_name)
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            registry = registries.get(folder)
            if registry is None:
                registry = registries[folder] = NameRegistry(folder)
            try:
                parts: UrlParts | SplitResult | None = split_url(url)
            except ValueError:
                parts = None
            if isinstance(parts, UrlParts):  # a plain http URL, its host and port checked
                host, port = parts.hostname, parts.port
            else:
                host, port = _plain_host(parts)
            problem = None if host else url_problem(url, parts)
            if problem is None and not host and parts is not None:
                host, port = (parts.hostname or "").lower(), parts.port
            if given_name is not None:
                base = given_name
            else:
                base = name_from_url(url, parts.path if parts is not None else None)
            name = registry.claim(base)
            expected = (
                parse_checksum_option(checksum, f"the checksum of {url}")
                if checksum is not None
                else None
            )
            job = _Job(
                len(jobs),
                url,
                name,
                folder,
                "",
                expected,
                headers,
                given_name is not None,
                host if problem is None else "",
                problem,
                parts,
                port,
            )
            jobs.append(job)
            # (prefix + name: os.path.join(folder, name), as name is one plain component)
            self.results.append(FileResult(url, prefix + name, error="not started"))
        if duplicates:
            self.warnings.append(
                f"{_plural(duplicates, 'duplicate URL')} collapsed (each is downloaded once)"
            )
        self._match_checksums(jobs)
        for job in jobs:
            job.root = self._root(job.folder) if create else os.path.realpath(job.folder)
            if job.root not in self._listings:
                try:
                    self._listings[job.root] = frozenset(os.listdir(job.root))
                except OSError:
                    self._listings[job.root] = frozenset()
        return jobs

    def _match_checksums(self, jobs: list[_Job]) -> None:
        """Give each job its manifest entry: by URL, by path (as ``sha256sum dir/*`` writes it:
        relative to here, absolute, or relative to the destination), or by a bare file name."""
        if not self.checksums:
            return
        keys: dict[str, _Job] = {}
        names: dict[str, list[_Job]] = {}
        for job in jobs:
            relative = os.path.normpath(
                os.path.relpath(os.path.join(job.folder, job.name), self.dest)
            )
            here = os.path.normpath(os.path.join(job.folder, job.name))
            for key in (job.url, relative, here, os.path.abspath(here)):
                keys.setdefault(key, job)
            names.setdefault(job.name, []).append(job)
        unmatched: list[str] = []
        for entry, digest in self.checksums.items():
            found = keys.get(entry)
            if found is None and "://" not in entry:
                normal = os.path.normpath(entry)
                found = keys.get(normal) or keys.get(os.path.abspath(normal))
                if found is None and os.sep not in normal and "/" not in normal:
                    candidates = names.get(normal, [])
                    found = candidates[0] if len(candidates) == 1 else None
            if found is None:
                unmatched.append(entry)
            elif found.expected is None:
                found.expected = digest
        if unmatched:
            shown = ", ".join(repr(e) for e in unmatched[:5])
            more = f" and {len(unmatched) - 5} more" if len(unmatched) > 5 else ""
            self.warnings.append(
                f"checksums: {_plural(len(unmatched), 'entry', 'entries')} "
                f"{'matches' if len(unmatched) == 1 else 'match'} no download and "
                f"{'verifies' if len(unmatched) == 1 else 'verify'} nothing: {shown}{more}"
            )

    # -- connection slots --------------------------------------------------------------------------
    def _host_limit(self, host: str) -> Semaphore:
        with self._hosts_lock:
            limit = self._hosts.get(host)
            if limit is None:
                limit = self._hosts[host] = Semaphore(self.o.per_host, name=f"host {host}")
            return limit

    @contextlib.contextmanager
    def slot(self, host: str) -> Iterator[None]:
        """One connection of the total and of the URL's host, waited for (cancellably)."""
        with self.connections, self._host_limit(host):
            yield

    @contextlib.contextmanager
    def _slot_for(self, host: str, *, held: bool) -> Iterator[None]:
        """``slot(host)``, or (``held``) the slot a handed-over response came with."""
        if not held:
            with self.slot(host):
                yield
            return
        try:
            yield
        finally:
            self.release_slots(host, 1)

    def _fair_extra(self, host: str) -> int:
        """How many extra slots one more segmented file of ``host`` may take: its even share
        of the host's connections among the files in flight there. Taking whatever is free
        gave the first of three large files 8 connections, the second 7 and the third 1, which
        then finished long after the others, alone on one connection."""
        limit = self._host_limit(host)
        budget = min(self.o.per_host, self.o.workers)
        with self._hosts_lock:
            extra = self._extra_slots.get(host, 0)
        files = max(1, self.o.per_host - limit.value - extra)
        return max(0, budget // files - 1)

    def try_extra_slots(self, host: str, wanted: int) -> int:
        """Take up to ``wanted`` more connection slots without waiting (for segments)."""
        limit = self._host_limit(host)
        taken = 0
        while taken < wanted:
            if not self.connections.acquire(blocking=False):
                break
            if not limit.acquire(blocking=False):
                self.connections.release()
                break
            taken += 1
        if taken:
            with self._hosts_lock:
                self._extra_slots[host] = self._extra_slots.get(host, 0) + taken
        return taken

    def release_slots(self, host: str, n: int) -> None:
        limit = self._host_limit(host)
        for _ in range(n):
            limit.release()
            self.connections.release()

    def release_extra_slots(self, host: str, n: int) -> None:
        """Give back the slots ``try_extra_slots`` took."""
        if n:
            with self._hosts_lock:
                self._extra_slots[host] -= n
            self.release_slots(host, n)

    # -- HTTP ----------------------------------------------------------------------------------
    def open(
        self,
        job: _Job,
        headers: Mapping[str, str] | None,
        method: str = "GET",
        first: Any = None,
    ) -> Any:
        """Send a request for ``job``, following redirects ourselves so loops and odd schemes
        fail clearly. ``first``: the response to a request already sent for it."""
        url = job.url
        seen = [url]
        for _ in range(_MAX_REDIRECTS + 1):
            if first is not None:
                response, first = first, None
                parts = split_url(url)
            else:
                response, parts = self._request(job, url, headers, method)
            host = (parts.hostname or "").lower()
            with self._hosts_lock:
                self._answered.add(host)
            if self.o.verbose:
                self._log(f"HTTP {response.status} {response.reason} from {strip_userinfo(url)}")
            location = response.headers.get("Location")
            if response.status in (301, 302, 303, 307, 308) and location:
                _release(response, reuse=True)
                from urllib.parse import urljoin

                target = urljoin(url, location)
                if split_url(target).scheme.lower() not in ("http", "https"):
                    raise _Fatal(f"redirect to a non-http(s) URL: {target}")
                if target in seen:
                    raise _Fatal("redirect loop: " + " -> ".join([*seen, target]))
                seen.append(target)
                self._log(f"{job.url}: redirected to {target}")
                url = target
                continue
            return response
        raise _Fatal(f"too many redirects (more than {_MAX_REDIRECTS}) from {seen[0]}")

    def _request(
        self, job: _Job, url: str, headers: Mapping[str, str] | None, method: str
    ) -> tuple[Any, Any]:
        if self.o.verbose:
            extra = "".join(f", {k}: {v}" for k, v in (headers or {}).items())
            self._log(f"{method} {strip_userinfo(url)}{extra}")
        response = None
        parts = split_url(url)
        if self._fast_ok and parts.scheme == "http":
            response = self._open_fast(job, url, parts, headers, method)
        if response is None:
            response = self._open_urllib3(job, url, headers, method)
        return response, parts

    def _open_urllib3(
        self, job: _Job, url: str, headers: Mapping[str, str] | None, method: str
    ) -> Any:
        sent = self.net.request_headers(url, job.headers, job.host)
        if headers:
            sent.update(headers)
        try:
            return self.net.manager(url).urlopen(
                method,
                strip_userinfo(url),
                headers=sent,
                redirect=False,
                preload_content=False,
                decode_content=self.o.compressed,
            )
        except Exception as exc:
            from urllib3.exceptions import HTTPError, NameResolutionError

            if isinstance(exc, NameResolutionError):
                raise _Fatal(f"cannot resolve host {split_url(url).hostname!r}") from exc
            if not isinstance(exc, HTTPError | OSError):
                raise
            checkpoint()
            raise self._connection_error(url, exc) from exc

    def _open_fast(
        self,
        job: _Job,
        url: str,
        parts: Any,
        headers: Mapping[str, str] | None,
        method: str,
    ) -> Any:
        """The lean client (plain http, no proxy); None when this URL needs urllib3."""
        host = parts.hostname or ""
        try:
            port = parts.port or 80
        except ValueError:
            return None
        key = (host, port)
        with self._hosts_lock:
            pool = self._fast_pools.get(key)
            slow = pool is None and host.lower() in self._slow_hosts
        if slow:
            return None
        if pool is None:
            if self.net.proxy_for(url) is not None:
                return None
            pool = self.fast_pool(host, port)
        if self.net.plain and not job.headers and parts.username is None:
            block = self._plain_block
        else:
            sent = self.net.request_headers(url, job.headers, job.host)
            block = "".join(f"{k}: {v}\r\n" for k, v in sent.items())
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items()) if headers else ""
        head = f"{method} {target} HTTP/1.1\r\nHost: {pool.host_header}\r\n{block}{extra}\r\n"
        sockets: list[_socket.socket] = []  # the one in use, for a cancel to shut down
        try:
            with on_cancel(lambda: _shutdown(sockets[-1] if sockets else None)):
                return _fast.request(
                    pool, head.encode("latin-1"), head_only=method == "HEAD", using=sockets
                )
        except _fast.Fallback:
            with self._hosts_lock:
                self._slow_hosts.add(host.lower())
                self._fast_pools.pop(key, None)
            pool.clear()
            return None
        except _socket.gaierror as exc:
            raise _Fatal(f"cannot resolve host {host!r}") from exc
        except (OSError, ValueError, UnicodeError) as exc:
            checkpoint()
            raise self._connection_error(url, exc) from exc

    def fast_pool(self, host: str, port: int) -> _fast.Pool:
        """The lean client's kept-alive connections to ``host:port``."""
        with self._hosts_lock:
            pool = self._fast_pools.get((host, port))
            if pool is None:
                pool = _fast.Pool(host, port, self.o.timeout, self.o.per_host)
                self._fast_pools[(host, port)] = pool
            return pool

    def _connection_error(self, url: str, exc: BaseException) -> _Retryable:
        parts = split_url(url)
        where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, ConnectionRefusedError) or "refused" in str(cause).lower():
                return _Retryable(f"connection refused by {where}", refused=True)
            cause = cause.__cause__ or cause.__context__
        text = _describe_error(exc)
        if text.startswith("timed out"):
            return _Retryable(f"no response from {where} in {self.o.timeout:g} s")
        return _Retryable(f"{text} (connecting to {where})")

    def _status_error(self, response: Any) -> _Retryable | _Fatal:
        status = response.status
        what = f"HTTP {status} {response.reason}".rstrip()
        if status in _RETRY_STATUSES:
            raw = _retry_after(response.headers.get("Retry-After"))
            if raw is not None and raw > self.o.max_retry_after:
                return _Fatal(
                    f"{what}: the server asks to wait {raw:.0f} s, more than "
                    f"max_retry_after ({self.o.max_retry_after:g} s)"
                )
            return _Retryable(what, raw)
        return _Fatal(what)

    # -- one file ------------------------------------------------------------------------------
    def fetch(self, job: _Job, error: Exception | None = None, response: Any = None) -> FileResult:
        """Download one file; ``error``: how an attempt already made failed (to retry, or to
        report when it is final); ``response``: one to a GET sent already, to carry on with
        (it holds a connection slot)."""
        result = self.results[job.index]
        if response is not None:
            job.handed = response
        result.error = None
        started = time.monotonic()
        try:
            if job.problem is not None:
                raise _Fatal(job.problem)
            if isinstance(error, _Fatal):
                raise error
            if self.disk_full.is_set():
                raise _Fatal("not started: the disk is full")
            if self.o.dry_run:
                self._spider(job, result)
            else:
                self._fetch(job, result, error if isinstance(error, _Retryable) else None)
            result.error = None
        except _Skip:
            result.status = "skipped"
        except _Fatal as exc:
            result.status = "failed"
            result.error = str(exc)
            self._log(f"{job.url}: failed: {exc}")
        except Cancelled:
            result.status = "cancelled"
            result.error = "cancelled"
            raise
        except Exception as exc:  # a bug or an odd OS error: this file fails, the batch goes on
            result.status = "failed"
            result.error = f"{type(exc).__name__}: {exc}"
            self._log(f"{job.url}: failed: {result.error}")
        finally:
            self.drop_handed(job)
            result.note = None
            result.seconds = time.monotonic() - started
        return result

    def drop_handed(self, job: _Job) -> None:
        """Close a handed-over response nobody used, and free its slot."""
        response, job.handed = job.handed, None
        if response is not None:
            _release(response, reuse=False)
            self.release_slots(job.host, 1)

    def _spider(self, job: _Job, result: FileResult) -> None:
        """Dry run: ask for the file without a body; write nothing."""
        while True:
            result.attempts += 1
            try:
                with self.slot(job.host):
                    response = self.open(job, None, method="HEAD")
                    _release(response, reuse=True)
                if response.status >= 400:
                    raise self._status_error(response)
                break
            except _Retryable as exc:
                if exc.refused or result.attempts > self.o.retries:
                    raise _Fatal(self._after(exc, result)) from exc
                sleep(self._delay(exc, result))
        result.size = _total_size(response)
        result.status = "done"

    def _after(self, error: Exception, result: FileResult) -> str:
        return f"{error} (after {_plural(result.attempts, 'attempt')})"

    def _delay(self, error: _Retryable, result: FileResult) -> float:
        if error.retry_after is not None:
            return error.retry_after
        if self.o.retry_wait is not None:
            return self.o.retry_wait
        # Exponential backoff with jitter, so retries from many files spread out.
        import random  # here: most batches never retry, and start-up counts

        return float(self.o.backoff * 2 ** (result.attempts - 1) * (0.5 + random.random()))

    def _fetch(self, job: _Job, result: FileResult, error: _Retryable | None = None) -> None:
        # What the folder held when the batch started (one listdir, not two stats a file).
        listing = self._listings.get(job.root, ())
        has_part = job.name + ".part" in listing
        has_final = job.name in listing
        if has_part or has_final:
            final = inside(job.root, job.name)  # also refuses to write through a symlink
        else:
            final = os.path.join(job.root, job.name)
        part = final + ".part"
        if not self.o.resume and (has_part or job.name + ".part.json" in listing):
            _discard(part)
            has_part = False
        if has_part:
            job.sidecar = True  # maybe: removed at the end either way
        elif has_final:
            try:
                stat = os.stat(final)
            except FileNotFoundError:
                stat = None
            if stat is not None:
                self._check_existing(job, final, stat, result)  # raises _Skip when current
        while True:
            if error is not None:
                if error.refused and job.host not in self._answered_hosts():
                    # Nothing listens there: fail at once, as curl and wget2 do. A host that
                    # answered earlier in this batch is probably restarting: retry it.
                    raise _Fatal(str(error))
                if result.attempts > self.o.retries:
                    raise _Fatal(self._after(error, result))
                delay = self._delay(error, result)
                if error.retry_after is not None:
                    result.note = f"waiting {delay:.0f} s: {error} (Retry-After)"
                else:
                    result.note = (
                        f"retry {result.attempts} of {self.o.retries} in {delay:.1f} s: {error}"
                    )
                self._log(f"{job.url}: {result.note}")
                sleep(delay)
                result.note = None
            result.attempts += 1
            try:
                self._attempt(job, final, part, result)
                return
            except _Retryable as exc:
                error = exc
            except _TooLong:
                job.meta = None
                _discard(part)  # its bytes cannot be trusted, nor resumed from
                raise
            except _DiskFull:
                self.disk_full.set()
                self._drop_if_empty(job, part)
                raise

    def _restart(self, job: _Job, part: str) -> None:
        """Forget the resume state: the next attempt downloads the whole file."""
        with job.lock:
            job.meta = None
            job.sidecar = False
        _discard(part)

    def _answered_hosts(self) -> set[str]:
        with self._hosts_lock:
            return set(self._answered)

    def _drop_if_empty(self, job: _Job, part: str) -> None:
        meta = job.meta
        done = sum(s[2] for s in meta["segments"]) if meta and meta.get("segments") else 0
        if not done or not job.sidecar:
            job.meta = None
            _discard(part)

    def _check_existing(
        self, job: _Job, final: str, stat: os.stat_result, result: FileResult
    ) -> None:
        """Raise ``_Skip`` when the file on disk is the server's current one."""
        size = stat.st_size
        if job.expected is not None:
            algorithm, digest = job.expected
            if _hash_file(final, algorithm) == digest:
                result.size = size
                raise _Skip
            return  # wrong content: download again
        headers: dict[str, str] = {}
        if self.o.timestamping:
            headers["If-Modified-Since"] = _format_date(stat.st_mtime)
        else:
            # One ranged GET, no HEAD: 416 means nothing past our size. If-Range with the
            # validator recorded at download time makes a changed file come back whole (200).
            headers["Range"] = f"bytes={size}-"
            validator = _stored_etag(final)
            if validator is None and self.o.remote_time:
                validator = _format_date(stat.st_mtime)
            if validator is not None:
                headers["If-Range"] = validator
        result.attempts += 1
        with self.slot(job.host):
            try:
                response = self.open(job, headers)
            except _Retryable:
                return  # the real download will retry and report
            total = _total_size(response)
            status = response.status
            # A server without ranges answers 200 either way: its validators tell.
            same = headers.get("If-Range") in (
                response.headers.get("ETag"),
                response.headers.get("Last-Modified"),
            )
            _release(response, reuse=status in (304, 416))
        if status == 304 or status == 416:
            result.size = size
            self._log(f"{job.url}: {final} is current, skipped")
            raise _Skip
        if status == 200 and total == size and not self.o.timestamping and same:
            result.size = size
            raise _Skip
        self._log(f"{job.url}: {final} is out of date (HTTP {status}), downloading again")

    def _attempt(self, job: _Job, final: str, part: str, result: FileResult) -> None:
        meta = job.meta
        if meta is None and job.sidecar:
            meta = _Meta.load(part)
            if meta.get("url") not in (None, job.url):
                meta = {}
            if meta and not meta.get("segments") and meta.get("size") and os.path.exists(part):
                # A sidecar of an earlier version: the part's size is what arrived.
                meta["segments"] = [[0, meta["size"], min(os.path.getsize(part), meta["size"])]]
            job.meta = meta or None
        if meta and meta.get("segments") and _validator(meta) and meta.get("size"):
            self._resume(job, final, part, result, meta)
            return
        job.meta = None
        result.note = None
        given, job.handed = job.handed, None
        with self._slot_for(job.host, held=given is not None):
            response = self.open(job, None, first=given)
            ok = False
            try:
                finished, hashed = self._first_response(job, final, part, result, response)
                ok = True
            finally:
                _release(response, reuse=ok)
        if not finished:
            self._finish(job, final, part, result, hashed=hashed)

    def _first_response(
        self, job: _Job, final: str, part: str, result: FileResult, response: Any
    ) -> tuple[bool, str | None]:
        """Handle the response to a plain GET; returns (finished already, the body's digest
        if it was computed on the way)."""
        status = response.status
        if status != 200:
            error = self._status_error(response)
            _release(response, reuse=True)  # a short error page: the connection stays usable
            raise error
        total = _total_size(response)
        headers = response.headers
        meta: dict[str, Any] = {
            "url": job.url,
            "etag": headers.get("ETag"),
            "last_modified": headers.get("Last-Modified"),
            "size": total,
        }
        disposition = headers.get("Content-Disposition")
        if disposition and not job.named:
            name = name_from_content_disposition(disposition)
            if name and name != job.name:
                meta["name"] = name
        encoded = headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
        result.size = None if encoded else total
        result.resumed_from = 0
        if encoded:
            job.meta = meta
            return False, self._stream_decoded(job, part, result, response)
        validator = _validator(meta)
        can_range = headers.get("Accept-Ranges", "").lower() == "bytes" and validator is not None
        extra = 0
        if (
            can_range
            and total is not None
            and self.o.split > 1
            and total >= 2 * self.o.min_split_size
        ):
            wanted = min(self.o.split, total // self.o.min_split_size) - 1
            extra = self.try_extra_slots(job.host, min(wanted, self._fair_extra(job.host)))
        if extra:
            try:
                self._segmented(job, part, result, meta, response, 1 + extra)
            finally:
                self.release_extra_slots(job.host, extra)
            self._finish(job, final, part, result, hashed=None)
            return True, None
        segment = [0, total if total is not None else 0, 0]
        if total is not None and validator is not None:
            meta["segments"] = [segment]
            job.meta = meta
        fd = self._open_part(job, part, total, fresh=True)
        keep = total is not None and total >= _RESUME_MIN and validator is not None
        try:
            if keep:
                self._save(job, part, meta, force=True)
            hasher = _hasher(job.expected[0]) if job.expected else None
            end = self._stream(
                job, response, fd, 0, None, hasher, result, segment, part if keep else None
            )
        finally:
            os.close(fd)
            if keep and job.meta is not None and segment[2] < segment[1]:
                with contextlib.suppress(_Fatal):
                    self._save(job, part, meta, force=True)  # what arrived, for a resume
        if total is not None and end < total:
            raise _Retryable(f"the body ended after {end} of {total} bytes")
        if total is None:
            result.size = end
        return False, (hasher.hexdigest() if hasher is not None else None)

    def _open_part(self, job: _Job, part: str, total: int | None, *, fresh: bool) -> int:
        flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_BINARY", 0)
        if fresh:
            flags |= os.O_TRUNC
        try:
            fd = os.open(part, flags, 0o644)
        except OSError as exc:
            raise self._disk_error(exc, job) from exc
        if fresh and total and total >= _RESUME_MIN:
            try:
                # Reserve the space now: a full disk shows at once, not after 24 MiB of a
                # sparse file and 30 more files failing one by one.
                if _FALLOCATE is not None:
                    _FALLOCATE(fd, 0, total)
                else:  # pragma: no cover - platforms without posix_fallocate
                    os.ftruncate(fd, total)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):  # file systems without it
                    return self._open_part(job, part, None, fresh=True)
                raise self._disk_error(exc, job) from exc
        return fd

    def _disk_error(self, exc: OSError, job: _Job) -> Exception:
        if exc.errno in _ENOSPC:
            return _DiskFull(
                f"the disk is full ({errno.errorcode.get(exc.errno or 0, 'ENOSPC')}) "
                f"writing {job.name}"
            )
        if _is_disk_error(exc):
            return _Fatal(f"cannot write {exc.filename or job.name}: {exc.strerror or exc}")
        return exc

    def _stream_decoded(
        self, job: _Job, part: str, result: FileResult, response: Any
    ) -> str | None:
        """A compressed body: decoded as it arrives, written in order, never resumed."""
        fd = self._open_part(job, part, None, fresh=True)
        hasher = _hasher(job.expected[0]) if job.expected else None
        position = 0
        limits = self._limits()
        try:
            with on_cancel(lambda: _shutdown(_socket_of(response))):
                try:
                    for chunk in response.stream(CHUNK, decode_content=True):
                        _write_all(fd, memoryview(chunk), position)
                        if hasher is not None:
                            hasher.update(chunk)
                        position += len(chunk)
                        with job.lock:
                            result.bytes += len(chunk)
                        for limit in limits:
                            limit.take(len(chunk))
                        checkpoint()
                except OSError as exc:
                    if _is_disk_error(exc):
                        raise self._disk_error(exc, job) from exc
                    checkpoint()
                    raise self._read_error(exc, position) from exc
                except _client_errors() as exc:
                    checkpoint()
                    raise self._read_error(exc, position) from exc
        finally:
            os.close(fd)
        result.size = position
        return hasher.hexdigest() if hasher is not None else None

    def _limits(self) -> list[RateLimit]:
        limits = []
        if self.total_limit is not None:
            limits.append(self.total_limit)
        if self.o.limit_rate_per_file is not None:
            limits.append(RateLimit(self.o.limit_rate_per_file))
        return limits

    def _read_error(self, exc: BaseException, position: int) -> _Retryable:
        text = _describe_error(exc)
        if text.startswith("timed out"):
            return _Retryable(
                f"no data for {self.o.timeout:g} s (the server stalled after {position} bytes)"
            )
        return _Retryable(f"the body ended after {position} bytes: {text}")

    def _stream(
        self,
        job: _Job,
        response: Any,
        fd: int,
        offset: int,
        limit: int | None,
        hasher: Any,
        result: FileResult,
        segment: list[int],
        part: str | None = None,
    ) -> int:
        """Copy the body into ``fd`` at ``offset`` (at most ``limit`` bytes); returns the end
        offset. Reads go straight into a reused 1 MiB buffer; a cancel shuts the socket.
        ``segment[2]`` (bytes done in the segment) is kept current for a resume, and written
        to the sidecar now and then when ``part`` is given."""
        view = memoryview(self.buffers.get())
        limits = self._limits()
        if limits:
            view = view[: min(limit.chunk() for limit in limits)]
        body = response if isinstance(response, _fast.Response) else _Body(response)
        position = offset
        remaining = limit
        lock = job.lock
        slow = self.o.lowest_speed_limit
        window_start = time.monotonic()
        window_bytes = 0
        # Large bodies of the lean client that nothing needs to see (no checksum on the way,
        # no rate limit) go from the socket to the file in the kernel: a copy less per byte.
        spliced = (
            body
            if isinstance(body, _fast.Response)
            and hasher is None
            and not limits
            and (limit if limit is not None else body.left) >= _SPLICE_MIN
            else None
        )
        pipe = _fast.splice_pipe() if spliced is not None else None
        with on_cancel(lambda: _shutdown(_socket_of(response))):
            try:
                while remaining is None or remaining > 0:
                    whole = remaining is None or remaining >= len(view)
                    if spliced is not None and pipe is not None:
                        size = len(view) if remaining is None else min(len(view), remaining)
                        n = spliced.splice_into(fd, position, size, pipe)
                        if not n:
                            break
                    else:
                        n = body.readinto(view if whole else view[:remaining])
                        if not n:
                            break
                        chunk = view[:n]
                        _write_all(fd, chunk, position)
                        if hasher is not None:
                            hasher.update(chunk)
                    position += n
                    if remaining is not None:
                        remaining -= n
                    with lock:
                        result.bytes += n
                        segment[2] += n
                    if part is not None:
                        self._save(job, part, None, force=False)
                    for rate in limits:
                        rate.take(n)
                    if slow is not None:
                        window_bytes += n
                        now = time.monotonic()
                        if now - window_start >= self.o.lowest_speed_time:
                            speed = window_bytes / (now - window_start)
                            if speed < slow:
                                raise _Retryable(
                                    f"slower than {slow:g} B/s ({speed:.0f} B/s) for "
                                    f"{self.o.lowest_speed_time:g} s"
                                )
                            window_start, window_bytes = now, 0
                    checkpoint()
            except OSError as exc:
                if _is_disk_error(exc):
                    raise self._disk_error(exc, job) from exc
                checkpoint()  # a socket shut down by a cancel: raise Cancelled instead
                raise self._read_error(exc, position) from exc
            except _client_errors() as exc:
                checkpoint()
                raise self._read_error(exc, position) from exc
            finally:
                if pipe is not None:
                    os.close(pipe[0])
                    os.close(pipe[1])
        if body.short:
            raise _Retryable(f"the body ended after {position} bytes: the connection closed")
        if (remaining is None or body.consumed) and body.finish(closing=_will_close(response)):
            response.close()
            raise _TooLong("the server sent more bytes than its Content-Length")
        return position

    def _save(self, job: _Job, part: str, meta: dict[str, Any] | None, *, force: bool) -> None:
        """Write the sidecar: at once with ``force``, else when enough time or bytes passed."""
        with job.lock:
            if meta is None:
                meta = job.meta  # the current state (None once the file starts over)
            if meta is None:
                return
            if not force:
                if not job.sidecar:
                    return
                now = time.monotonic()
                gap = now - job.saved_at
                done = sum(s[2] for s in meta["segments"])
                enough = max(1, (meta.get("size") or 0) // _SAVE_FRACTION)
                if gap < _SAVE_MIN_GAP or (gap < _SAVE_EVERY and done - job.saved_bytes < enough):
                    return
                job.saved_bytes = done
            job.saved_at = time.monotonic()
            job.sidecar = True
            try:
                _Meta.save(part, meta)
            except OSError as exc:
                raise self._disk_error(exc, job) from exc

    def _finish(
        self, job: _Job, final: str, part: str, result: FileResult, hashed: str | None
    ) -> None:
        meta = job.meta or {}
        expected_size = meta.get("size") if meta.get("segments") else None
        if expected_size is not None:
            size = os.path.getsize(part)
            if size != expected_size:
                job.meta = None
                _discard(part)
                raise _Retryable(f"the file has {size} bytes, the server announced {expected_size}")
        else:
            size = result.size if result.size is not None else os.path.getsize(part)
        if job.expected is not None:
            algorithm, digest = job.expected
            actual = hashed if hashed is not None else _hash_file(part, algorithm)
            if actual != digest:
                job.meta = None
                _discard(part)
                raise _Fatal(f"{algorithm} mismatch: expected {digest}, got {actual}")
        name = job.name
        if meta.get("name"):
            name, final = self._place_named(job, part, meta["name"])
        if final != part:
            os.replace(part, final)  # only a complete, verified file gets the final name
            self._stamp(final, meta)
        if job.sidecar:
            _Meta.remove(part)
        job.meta = None
        result.path = os.path.join(job.folder, name)
        result.size = size
        result.status = "done"

    def _stamp(self, final: str | int, meta: Mapping[str, Any]) -> None:
        """Record the server's validators on the file: its mtime from Last-Modified, its ETag
        in an extended attribute where the file system keeps them. A later run checks them
        before skipping the file."""
        last_modified = meta.get("last_modified")
        if self.o.remote_time and last_modified:
            when = _http_date(last_modified)
            if when is not None:
                try:
                    os.utime(final, (when, when))
                except (OSError, OverflowError):
                    pass
        etag = meta.get("etag")
        if _XATTRS and etag:
            try:
                os.setxattr(final, _XATTR_ETAG, etag.encode("utf-8", "replace"))
            except OSError:
                pass

    def _place_named(self, job: _Job, part: str, wanted: str) -> tuple[str, str]:
        """Where a file named by Content-Disposition goes. A rerun that downloads the same
        bytes again finds them under that name (or an earlier ``name (n)``) and keeps that
        file: reruns add no copies. Returns (name, path); path is ``part`` when it was dropped."""
        registry = self.names if job.folder == self.dest else NameRegistry(job.folder)
        n = 0
        candidate = wanted
        while True:
            path = inside(job.root, candidate)
            if not os.path.lexists(path):
                break
            if _same_content(part, path):
                os.remove(part)
                return candidate, part
            n += 1
            candidate = _numbered(wanted, n)
        name = registry.claim(candidate, avoid_existing=True)
        return name, inside(job.root, name)

    # -- large files and resumes: segments ---------------------------------------------------------
    def _segmented(
        self,
        job: _Job,
        part: str,
        result: FileResult,
        meta: dict[str, Any],
        response: Any,
        count: int,
    ) -> None:
        total = meta["size"]
        step = math.ceil(total / count)
        meta["segments"] = [[i * step, min(total, (i + 1) * step), 0] for i in range(count)]
        job.meta = meta
        fd = self._open_part(job, part, total, fresh=True)
        try:
            self._save(job, part, meta, force=True)
            self._run_segments(job, part, fd, result, meta, first=response)
        finally:
            os.close(fd)
        result.segments = count

    def _resume(
        self, job: _Job, final: str, part: str, result: FileResult, meta: dict[str, Any]
    ) -> None:
        segments = meta["segments"]
        left = sum(1 for s in segments if s[0] + s[2] < s[1])
        result.size = meta["size"]
        with self.slot(job.host):
            first = None
            if left == 0:
                pass  # everything arrived before: only the checks of _finish are left
            elif len(segments) == 1:
                # One stream: a 200 (the file changed, or Range is ignored) is used as it is.
                first = self._open_segment(job, segments[0], meta)
                if first.status == 200:
                    ok = False
                    try:
                        self._restart(job, part)
                        finished, hashed = self._first_response(job, final, part, result, first)
                        ok = True
                    finally:
                        _release(first, reuse=ok)
                    if not finished:
                        self._finish(job, final, part, result, hashed=hashed)
                    return
            extra = self.try_extra_slots(job.host, max(0, left - 1))
            try:
                try:
                    fd = os.open(part, os.O_WRONLY | getattr(os, "O_BINARY", 0))
                except FileNotFoundError:
                    if first is not None:
                        _release(first, reuse=False)
                    self._restart(job, part)
                    raise _Retryable("the .part file disappeared; starting over") from None
                try:
                    with job.lock:
                        result.resumed_from = sum(s[2] for s in segments)
                    self._run_segments(
                        job, part, fd, result, meta, first=first, workers=1 + extra, ranged=True
                    )
                finally:
                    os.close(fd)
            finally:
                self.release_extra_slots(job.host, extra)
        result.segments = len(segments)
        self._finish(job, final, part, result, hashed=None)

    def _run_segments(
        self,
        job: _Job,
        part: str,
        fd: int,
        result: FileResult,
        meta: dict[str, Any],
        first: Any,
        workers: int | None = None,
        ranged: bool = False,
    ) -> None:
        """Download the unfinished segments in parallel. ``first``: a response already open
        for the first of them (``ranged``: to a Range request)."""
        segments: list[list[int]] = meta["segments"]
        pending = [
            (index, segment)
            for index, segment in enumerate(segments)
            if segment[0] + segment[2] < segment[1]
        ]
        if not pending and first is not None:
            _release(first, reuse=False)
        try:
            if len(pending) == 1:
                self._segment(job, part, fd, pending[0][1], meta, first, result, ranged)
            else:
                with TaskGroup(name=f"segments of {job.name}", max_workers=workers) as group:
                    for n, (_, segment) in enumerate(pending):
                        response = first if n == 0 else None
                        group.spawn(
                            self._segment,
                            job,
                            part,
                            fd,
                            segment,
                            meta,
                            response,
                            result,
                            ranged or response is None,
                        )
        except BaseExceptionGroup as group_error:
            for kind in (_DiskFull, _Fatal, _Retryable):
                found = [e for e in group_error.exceptions if isinstance(e, kind)]
                if found:
                    raise found[0] from group_error
            raise
        finally:
            if job.sidecar and job.meta is not None:
                with contextlib.suppress(_Fatal):
                    self._save(job, part, meta, force=True)  # every segment's progress

    def _open_segment(self, job: _Job, segment: list[int], meta: Mapping[str, Any]) -> Any:
        position = segment[0] + segment[2]
        headers = {"Range": f"bytes={position}-{segment[1] - 1}"}
        validator = _validator(meta)
        if validator:
            headers["If-Range"] = validator
        return self.open(job, headers)

    def _segment(
        self,
        job: _Job,
        part: str,
        fd: int,
        segment: list[int],
        meta: dict[str, Any],
        response: Any,
        result: FileResult,
        ranged: bool,
    ) -> None:
        start, end = segment[0], segment[1]
        position = start + segment[2]
        ok = False
        if response is None:
            response = self._open_segment(job, segment, meta)
        try:
            if ranged and response.status in (200, 416):
                # A changed file (If-Range failed), a server that ignores Range, or one that
                # has fewer bytes than the sidecar says: what is on disk cannot be used.
                self._restart(job, part)
                if response.status == 416:
                    raise _Retryable("the server refused the resume range; starting over")
                raise _Retryable(
                    f"HTTP 200 to a resume at byte {position} (the file changed on the "
                    "server, or the server ignores Range); starting over"
                )
            if ranged and (response.status != 206 or _range_start(response) != position):
                if response.status == 206:
                    self._restart(job, part)
                    raise _Retryable(f"the server sent another range than bytes={position}-")
                raise self._status_error(response)
            self._stream(job, response, fd, position, end - position, None, result, segment, part)
            ok = start + segment[2] >= end and _consumed(response)
        finally:
            _release(response, reuse=ok)  # a half-read connection is never reused
        if start + segment[2] < end:
            raise _Retryable(f"a segment ended at {start + segment[2]} of {end}")


_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, 1)}
_dates: dict[str, float | None] = {}
_dates_lock = threading.Lock()


def _http_date(text: str) -> float | None:
    """Seconds since the epoch of an HTTP date; the usual IMF-fixdate form is parsed here,
    fast, and the rest by the email package."""
    with _dates_lock:
        known = text in _dates
        when = _dates.get(text)
    if known:
        return when
    parts = text.split()
    try:
        if len(parts) == 6 and parts[5] == "GMT" and parts[2] in _MONTHS:
            hour, minute, second = (int(x) for x in parts[4].split(":"))
            day = _days_since_epoch(int(parts[3]), _MONTHS[parts[2]], int(parts[1]))
            when = float(day * 86400 + hour * 3600 + minute * 60 + second)
        else:
            import email.utils

            when = email.utils.parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        when = None
    with _dates_lock:
        if len(_dates) < 1024:  # a batch's files mostly share a handful of dates
            _dates[text] = when
    return when


def _plain_host(parts: UrlParts | SplitResult | None) -> tuple[str, int | None]:
    """(host, port) of an http(s) URL of the plain form ``scheme://host[:port]/...``, found
    without urllib's properties (they parse the netloc again at each call); ("", None) for
    any other URL, which ``url_problem`` then checks in full."""
    if parts is None or parts.scheme not in ("http", "https"):
        return "", None
    netloc = parts.netloc
    if "@" in netloc or "[" in netloc:
        return "", None
    host, _, port_text = netloc.partition(":")
    if not host:
        return "", None
    if not port_text:
        return host.lower(), None
    if port_text.isascii() and port_text.isdigit() and int(port_text) <= 65535:
        return host.lower(), int(port_text)
    return "", None


def _days_since_epoch(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a proleptic Gregorian date: calendar.timegm's arithmetic
    without importing calendar and datetime (milliseconds of start-up)."""
    if not (1 <= month <= 12 and 1 <= day <= 31):
        raise ValueError(f"not a date: {year}-{month}-{day}")
    year -= month <= 2
    era = year // 400
    of_era = year - era * 400
    of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    return era * 146097 + of_era * 365 + of_era // 4 - of_era // 100 + of_year - 719468


def _format_date(when: float) -> str:
    import email.utils

    return email.utils.formatdate(when, usegmt=True)


def _hasher(algorithm: str) -> Any:
    import hashlib

    return hashlib.new(algorithm)


def _consumed(response: Any) -> bool:
    if isinstance(response, _fast.Response):
        return response.consumed
    fp = getattr(response, "_fp", None)
    return fp is None or bool(fp.isclosed())


def _release(response: Any, *, reuse: bool) -> None:
    """Give the connection back to the pool only after a clean, complete exchange; any error
    closes it (a half-read connection would fail every request that reuses it)."""
    if isinstance(response, _fast.Response):
        response.release(reuse=reuse)
        return
    if reuse:
        fp = getattr(response, "_fp", None)
        try:
            if fp is not None and not fp.isclosed():
                response.drain_conn()  # a short error page or redirect body
        except Exception:
            reuse = False
    if not reuse:
        response.close()
    response.release_conn()


def _stored_etag(path: str) -> str | None:
    if not _XATTRS:  # pragma: no cover - platforms without extended attributes
        return None
    try:
        return os.getxattr(path, _XATTR_ETAG).decode("utf-8", "replace")
    except OSError:
        return None


def _same_content(a: str, b: str) -> bool:
    try:
        if os.path.getsize(a) != os.path.getsize(b):
            return False
        with open(a, "rb") as fa, open(b, "rb") as fb:
            while True:
                block_a = fa.read(CHUNK)
                if block_a != fb.read(CHUNK):
                    return False
                if not block_a:
                    return True
    except OSError:
        return False


def _numbered(name: str, n: int) -> str:
    stem, dot, ext = name.rpartition(".")
    return f"{stem} ({n}).{ext}" if dot and stem else f"{name} ({n})"


def _make_log(log: object) -> Callable[[str], object] | None:
    if log is None:
        return None
    if callable(log):
        return log
    write = getattr(log, "write", None)
    if write is None:
        raise TypeError(f"log must be a callable, a text file or None, got {log!r}")
    lock = threading.Lock()
    stream: IO[str] = log  # type: ignore[assignment]

    def to_file(message: str) -> None:
        with lock:
            stream.write(f"{time.strftime('%H:%M:%S')} {message}\n")
            stream.flush()

    return to_file


def _check_rate(value: object, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of bytes per second or None, got {value!r}")
    if not value > 0 or math.isinf(value):
        raise ValueError(f"{name} must be a positive number of bytes per second, got {value!r}")
    return float(value)


def download(
    urls: Iterable[str | Request],
    dest: str | os.PathLike[str] = ".",
    *,
    workers: int = 16,
    per_host: int | None = None,
    retries: int = 5,
    timeout: float = 30.0,
    resume: bool = True,
    checksums: Mapping[str, str] | str | os.PathLike[str] | None = None,
    progress: bool | str | Callable[[DownloadReport], object] = False,
    backoff: float = 0.5,
    segments: bool = True,
    retry_wait: float | None = None,
    headers: Mapping[str, str] | None = None,
    user_agent: str | None = None,
    cookies: str | os.PathLike[str] | http.cookiejar.CookieJar | None = None,
    auth: tuple[str, str] | None = None,
    netrc: bool | str | os.PathLike[str] = False,
    proxy: str | bool | None = None,
    no_proxy: str | None = None,
    limit_rate: float | None = None,
    limit_rate_per_file: float | None = None,
    split: int = 8,
    min_split_size: int = 8 << 20,
    timestamping: bool = False,
    remote_time: bool = True,
    lowest_speed_limit: float | None = None,
    lowest_speed_time: float = 30.0,
    dry_run: bool = False,
    verify: bool = True,
    ca_certificate: str | os.PathLike[str] | None = None,
    compressed: bool = False,
    max_retry_after: float = 120.0,
    log: Callable[[str], object] | IO[str] | None = None,
    verbose: bool = False,
) -> DownloadReport:
    """Download ``urls`` (strings or ``Request``) into ``dest`` in parallel; never raises for a
    single file's failure.

    Each file is written to ``name.part`` and renamed only when complete and verified.
    ``checksums`` maps URLs or file paths to ``"sha256:<hex>"`` (or is a ``sha256sum``
    manifest). Ctrl-C raises ``DownloadInterrupted`` with the report; ``.part`` files stay
    and the next run resumes them. docs/downloads.md describes every option.
    """
    items: list[str | Request] = []
    for url in urls:
        if isinstance(url, str | Request):
            items.append(url)
        else:
            raise TypeError(f"urls must be strings or Request objects, got {url!r}")
    folder = os.fspath(dest)
    workers_n = _validate.check_positive_int(workers, "workers") or 16
    per_host_n = _validate.check_positive_int(per_host, "per_host", allow_none=True) or workers_n
    _validate.check_non_negative_int(retries, "retries")
    timeout_s = _validate.check_timeout(timeout)
    backoff_s = _validate.check_timeout(backoff, "backoff")
    retry_wait_s = _validate.check_timeout(retry_wait, "retry_wait")
    split_n = _validate.check_positive_int(split, "split") or 1
    if isinstance(min_split_size, bool) or not isinstance(min_split_size, int):
        raise TypeError(f"min_split_size must be a number of bytes, got {min_split_size!r}")
    if min_split_size < 1:
        raise ValueError(f"min_split_size must be >= 1 byte, got {min_split_size!r}")
    slowest = _check_rate(lowest_speed_limit, "lowest_speed_limit")
    window = _validate.check_timeout(lowest_speed_time, "lowest_speed_time")
    if window is None or window <= 0:
        raise ValueError(f"lowest_speed_time must be a positive number, got {lowest_speed_time!r}")
    cap = _validate.check_timeout(max_retry_after, "max_retry_after")
    total_rate = _check_rate(limit_rate, "limit_rate")
    file_rate = _check_rate(limit_rate_per_file, "limit_rate_per_file")
    if auth is not None and (
        not isinstance(auth, tuple) or len(auth) != 2 or not all(isinstance(a, str) for a in auth)
    ):
        raise TypeError(f"auth must be a (user, password) tuple of strings, got {auth!r}")
    if headers is not None and not isinstance(headers, Mapping):
        raise TypeError(f"headers must be a mapping of names to values, got {headers!r}")
    if user_agent is not None and not isinstance(user_agent, str):
        raise TypeError(f"user_agent must be a string or None, got {user_agent!r}")
    if not isinstance(netrc, bool | str | os.PathLike):
        raise TypeError(f"netrc must be a bool or a path, got {netrc!r}")
    logger = _make_log(log)
    default_headers = {
        "User-Agent": user_agent if user_agent is not None else f"threadwise/{__version__}",
        "Accept-Encoding": _accept_encoding() if compressed else "identity",
    }
    if headers:
        for key, value in headers.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(f"headers must map strings to strings, got {key!r}: {value!r}")
            for existing in [k for k in default_headers if k.lower() == key.lower()]:
                del default_headers[existing]
            default_headers[key] = value
    network = Network(
        workers=workers_n,
        per_host=per_host_n,
        timeout=timeout_s if timeout_s is not None else 30.0,
        headers=default_headers,
        auth=auth,
        netrc=netrc,
        cookies=load_cookie_jar(cookies),
        proxy=proxy,
        no_proxy=no_proxy,
        verify=bool(verify),
        ca_certificate=os.fspath(ca_certificate) if ca_certificate is not None else None,
    )
    options = _Options(
        workers=workers_n,
        per_host=per_host_n,
        retries=retries,
        timeout=timeout_s if timeout_s is not None else 30.0,
        resume=bool(resume),
        backoff=backoff_s if backoff_s is not None else 0.5,
        retry_wait=retry_wait_s,
        split=split_n if segments else 1,
        min_split_size=min_split_size,
        timestamping=bool(timestamping),
        remote_time=bool(remote_time),
        lowest_speed_limit=slowest,
        lowest_speed_time=window,
        dry_run=bool(dry_run),
        compressed=bool(compressed),
        max_retry_after=cap if cap is not None else math.inf,
        limit_rate_per_file=file_rate,
        verbose=bool(verbose),
    )
    if not dry_run:
        os.makedirs(folder, exist_ok=True)
    loader = Downloader(
        folder,
        options,
        network,
        load_checksums(checksums),
        RateLimit(total_rate) if total_rate is not None else None,
        logger,
    )
    if not verify:
        message = (
            "TLS certificate checks are OFF (verify=False): any server can pretend to be the "
            "one you asked for"
        )
        warnings.warn(message, InsecureWarning, stacklevel=2)
        loader.warnings.append(message)
        loader._log(f"warning: {message}")
    jobs = loader.plan(items, create=not dry_run)
    for text in loader.warnings:
        if text.startswith(("checksums", "duplicate")) or "collapsed" in text:
            loader._log(f"warning: {text}")
    report = DownloadReport(files=loader.results, warnings=loader.warnings)
    started = time.monotonic()
    reporter = _start_progress(progress, report, started)
    try:
        loader.run(jobs)
    except KeyboardInterrupt:
        report.interrupted = True
        report.elapsed = time.monotonic() - started
        raise DownloadInterrupted(report) from None
    finally:
        report.elapsed = time.monotonic() - started
        if loader.disk_full.is_set():
            report.warnings.append("the disk is full: the files not started yet were not tried")
        if reporter is not None:
            reporter()
        network.clear()
        loader.close()
        loader.buffers.close_all()
    return report


def _accept_encoding() -> str:
    encodings = [_ENCODINGS]
    for module, token in (("brotli", "br"), ("zstandard", "zstd")):
        with contextlib.suppress(ImportError):
            __import__(module)
            encodings.append(token)
    return ", ".join(encodings)


def _start_progress(
    progress: object, report: DownloadReport, started: float
) -> Callable[[], None] | None:
    """A sampler thread that calls ``progress(report)`` (or draws a line) ten times a second."""
    if progress is False or progress is None:
        return None
    callback: Callable[[DownloadReport], object]
    if callable(progress):
        callback = progress
    elif progress is True or progress == "force":
        import sys

        if progress is True and not sys.stderr.isatty():
            return None

        def draw(r: DownloadReport) -> None:
            r.elapsed = time.monotonic() - started
            sys.stderr.write(
                f"\r{r.count('done')}/{len(r.files)} files, "
                f"{r.total_bytes / 1048576:.1f} MiB, {r.throughput / 1048576:.1f} MiB/s   "
            )
            sys.stderr.flush()

        callback = draw
    else:
        raise TypeError(f"progress must be True, False, 'force' or a callable, got {progress!r}")
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            report.elapsed = time.monotonic() - started
            callback(report)

    thread = threading.Thread(target=sample, name="download progress", daemon=True)
    thread.start()

    def finish() -> None:
        stop.set()
        thread.join()
        callback(report)
        if not callable(progress):
            import sys

            sys.stderr.write("\n")

    return finish
