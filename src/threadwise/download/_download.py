"""The parallel downloader: one thread per file in flight (``threadwise.map``), urllib3's
connection pools, ``.part`` files that resume, retries, per-host limits, safe names, checksums
and parallel segments for large files."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from .. import _validate
from .._cancel import checkpoint, on_cancel, sleep
from .._exceptions import Cancelled
from .._group import TaskGroup
from .._local import ThreadLocal
from .._pipeline import map as tw_map
from .._sync import Semaphore
from .._version import __version__
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
from ._report import DownloadReport, FileResult

try:
    import urllib3
    from urllib3.exceptions import HTTPError as _Urllib3Error
    from urllib3.exceptions import NameResolutionError
except ImportError:  # pragma: no cover - the cli extra installs it
    urllib3 = None  # type: ignore[assignment]
    # Stand-ins so the except clauses below stay valid without urllib3.
    _Urllib3Error = type("_Urllib3Error", (Exception,), {})  # type: ignore[misc,assignment]
    NameResolutionError = type("NameResolutionError", (_Urllib3Error,), {})  # type: ignore[misc,assignment]


_MAX_REDIRECTS = 10
_SEGMENT_MIN = 8 << 20  # files below twice this are never split
_MAX_SEGMENTS = 8
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# Smaller files get no resume sidecar: restarting them costs less than writing one.
_RESUME_MIN = 1 << 20


class DownloadInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``download()``: ``report`` says what finished; ``.part`` files stay."""

    def __init__(self, report: DownloadReport) -> None:
        super().__init__("download interrupted")
        self.report = report


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Fatal(Exception):
    pass


class _TooLong(_Fatal):
    """The body outgrew its Content-Length: the data cannot be trusted."""


class _Skip(Exception):
    """The file is already complete on disk."""


@dataclass
class _Job:
    index: int
    url: str
    name: str
    expected: tuple[str, str] | None  # (algorithm, hex digest)


class Downloader:
    """A batch download. Use ``download()``; this class holds the shared state."""

    def __init__(
        self,
        dest: str,
        *,
        workers: int,
        per_host: int,
        retries: int,
        timeout: float,
        resume: bool,
        checksums: dict[str, tuple[str, str]],
        backoff: float,
        segments: bool,
    ) -> None:
        if urllib3 is None:  # pragma: no cover
            raise ImportError("threadwise.download needs urllib3: pip install 'threadwise[cli]'")
        self.dest = dest
        self.root = os.path.realpath(dest)
        self.workers = workers
        self.per_host = per_host
        self.retries = retries
        self.timeout = timeout
        self.resume = resume
        self.checksums = checksums
        self.backoff = backoff
        self.segments = segments
        self.names = NameRegistry(dest)
        self.http = urllib3.PoolManager(
            num_pools=max(16, workers),
            maxsize=per_host,
            retries=False,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            headers={"User-Agent": f"threadwise/{__version__}", "Accept-Encoding": "identity"},
        )
        self.connections = Semaphore(workers, name="connections")
        self._hosts: dict[str, Semaphore] = {}
        self._hosts_lock = threading.Lock()
        self.buffers: ThreadLocal[bytearray] = ThreadLocal(lambda: bytearray(CHUNK))
        self.results: list[FileResult] = []
        self.progress_lock = threading.Lock()

    # -- planning --------------------------------------------------------------------------------
    def plan(self, urls: list[str]) -> list[_Job]:
        jobs = []
        for index, url in enumerate(urls):
            name = self.names.claim(name_from_url(url))
            expected = self.checksums.get(url) or self.checksums.get(name)
            jobs.append(_Job(index, url, name, expected))
            self.results.append(
                FileResult(url=url, path=os.path.join(self.dest, name), error="not started")
            )
        return jobs

    # -- connection slots --------------------------------------------------------------------------
    def _host_limit(self, url: str) -> Semaphore:
        host = (urlsplit(url).hostname or "").lower()
        with self._hosts_lock:
            limit = self._hosts.get(host)
            if limit is None:
                limit = self._hosts[host] = Semaphore(self.per_host, name=f"host {host}")
            return limit

    @contextlib.contextmanager
    def slot(self, url: str) -> Iterator[None]:
        """One connection of the total and of the URL's host, waited for (cancellably)."""
        host = self._host_limit(url)
        with self.connections, host:
            yield

    def try_extra_slots(self, url: str, wanted: int) -> int:
        """Take up to ``wanted`` more connection slots without waiting (for segments)."""
        host = self._host_limit(url)
        taken = 0
        while taken < wanted:
            if not self.connections.acquire(blocking=False):
                break
            if not host.acquire(blocking=False):
                self.connections.release()
                break
            taken += 1
        return taken

    def release_slots(self, url: str, n: int) -> None:
        host = self._host_limit(url)
        for _ in range(n):
            host.release()
            self.connections.release()

    # -- HTTP ----------------------------------------------------------------------------------
    def open(self, url: str, headers: dict[str, str]) -> Any:
        """GET ``url``, following redirects ourselves so loops and odd schemes fail clearly."""
        seen = [url]
        for _ in range(_MAX_REDIRECTS + 1):
            scheme = urlsplit(url).scheme.lower()
            if scheme not in ("http", "https"):
                raise _Fatal(f"unsupported URL scheme {scheme or 'none'!r} in {url}")
            try:
                response = self.http.urlopen(
                    "GET", url, headers=headers, redirect=False, preload_content=False
                )
            except NameResolutionError as exc:
                raise _Fatal(f"cannot resolve host {urlsplit(url).hostname!r}") from exc
            except (_Urllib3Error, OSError) as exc:
                checkpoint()
                raise _Retryable(_describe_error(exc)) from exc
            location = response.headers.get("Location")
            if response.status in (301, 302, 303, 307, 308) and location:
                response.drain_conn()
                response.release_conn()
                target = urljoin(url, location)
                if urlsplit(target).scheme.lower() not in ("http", "https"):
                    raise _Fatal(f"redirect to a non-http(s) URL: {target}")
                if target in seen:
                    raise _Fatal("redirect loop: " + " -> ".join([*seen, target]))
                seen.append(target)
                url = target
                continue
            return response
        raise _Fatal(f"too many redirects (more than {_MAX_REDIRECTS}) from {seen[0]}")

    # -- one file ------------------------------------------------------------------------------
    def fetch(self, job: _Job) -> FileResult:
        result = self.results[job.index]
        result.error = None
        started = time.monotonic()
        try:
            self._fetch(job, result)
            result.error = None
        except _Skip:
            result.status = "skipped"
        except _Fatal as exc:
            result.status = "failed"
            result.error = str(exc)
        except Cancelled:
            result.status = "cancelled"
            result.error = "cancelled"
            raise
        except Exception as exc:  # a bug or an odd OS error: this file fails, the batch goes on
            result.status = "failed"
            result.error = f"{type(exc).__name__}: {exc}"
        finally:
            result.seconds = time.monotonic() - started
        return result

    def _fetch(self, job: _Job, result: FileResult) -> None:
        final = inside(self.root, job.name)
        part = final + ".part"
        if os.path.exists(final) and not os.path.exists(part):
            self._check_existing(job, final, result)  # raises _Skip when complete
        if not self.resume:
            with contextlib.suppress(FileNotFoundError):
                os.remove(part)
            _Meta.remove(part)
        error: _Retryable | None = None
        while True:
            if error is not None:
                if result.attempts > self.retries:
                    raise _Fatal(f"{error} (after {result.attempts} attempts)")
                delay = error.retry_after
                if delay is None:
                    # Exponential backoff with jitter, so retries from many files spread out.
                    delay = self.backoff * 2 ** (result.attempts - 1) * (0.5 + random.random())
                sleep(delay)
            result.attempts += 1
            try:
                self._attempt(job, final, part, result)
                return
            except _Retryable as exc:
                error = exc
            except _TooLong:
                _discard(part)  # its bytes cannot be trusted, nor resumed from
                raise

    def _check_existing(self, job: _Job, final: str, result: FileResult) -> None:
        size = os.path.getsize(final)
        if job.expected is not None:
            algorithm, digest = job.expected
            if _hash_file(final, algorithm) == digest:
                result.size = size
                raise _Skip
            return  # wrong content: download again
        # One ranged GET, no HEAD: 416 means the server has nothing past our size.
        result.attempts += 1
        with self.slot(job.url):
            try:
                response = self.open(job.url, {"Range": f"bytes={size}-"})
            except _Retryable:
                return  # the real download will retry and report
            try:
                total = _total_size(response)
                if response.status == 416 or (response.status == 200 and total == size):
                    result.size = size
                    raise _Skip
            finally:
                response.drain_conn() if response.status == 416 else response.close()
                response.release_conn()

    def _attempt(self, job: _Job, final: str, part: str, result: FileResult) -> None:
        meta = _Meta.load(part) if os.path.exists(part) else {}
        if meta.get("url") not in (None, job.url):
            meta = {}
        if meta.get("segments"):
            self._resume_segments(job, final, part, result, meta)
            return
        offset = os.path.getsize(part) if meta and os.path.exists(part) else 0
        headers: dict[str, str] = {}
        validator = meta.get("etag") or meta.get("last_modified")
        if offset and validator:
            headers["Range"] = f"bytes={offset}-"
            headers["If-Range"] = validator
        else:
            offset = 0
        extra = 0
        with self.slot(job.url):
            response = self.open(job.url, headers)
            try:
                status = response.status
                if status == 416 and offset and meta.get("size") == offset:
                    response.drain_conn()
                    self._finish(job, final, part, result, meta, hashed=None)
                    return
                if status == 416:
                    response.drain_conn()
                    _discard(part)
                    raise _Retryable("the server refused the resume range; starting over")
                if status in _RETRY_STATUSES:
                    response.drain_conn()
                    raise _Retryable(
                        f"HTTP {status} {response.reason}",
                        _retry_after(response.headers.get("Retry-After")),
                    )
                if status not in (200, 206):
                    response.drain_conn()
                    raise _Fatal(f"HTTP {status} {response.reason}")
                start = offset if status == 206 else 0
                if status == 206 and _range_start(response) != offset:
                    response.close()
                    _discard(part)
                    raise _Retryable("the server sent a different range; starting over")
                total = _total_size(response)
                meta = {
                    "url": job.url,
                    "etag": response.headers.get("ETag"),
                    "last_modified": response.headers.get("Last-Modified"),
                    "size": total,
                }
                disposition = name_from_content_disposition(
                    response.headers.get("Content-Disposition")
                )
                if disposition and disposition != job.name:
                    meta["name"] = disposition
                result.size = total
                result.resumed_from = start
                if (
                    self.segments
                    and start == 0
                    and total is not None
                    and total >= 2 * _SEGMENT_MIN
                    and response.headers.get("Accept-Ranges", "").lower() == "bytes"
                    and meta["etag"]
                ):
                    wanted = min(_MAX_SEGMENTS, total // _SEGMENT_MIN) - 1
                    extra = self.try_extra_slots(job.url, wanted)
                if extra:
                    self._segmented(job, final, part, result, meta, response, extra)
                    return
                if total is None or total >= _RESUME_MIN:
                    _Meta.save(part, meta)
                hasher = hashlib.new(job.expected[0]) if job.expected and start == 0 else None
                self._stream_to_part(response, part, start, total, hasher, result)
                hashed = hasher.hexdigest() if hasher is not None else None
            finally:
                if extra:
                    self.release_slots(job.url, extra)
                response.release_conn()
        self._finish(job, final, part, result, meta, hashed=hashed)

    def _stream_to_part(
        self,
        response: Any,
        part: str,
        start: int,
        total: int | None,
        hasher: Any,
        result: FileResult,
    ) -> None:
        flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_BINARY", 0)
        fd = os.open(part, flags, 0o644)
        try:
            if start == 0:
                os.ftruncate(fd, 0)
            end = self._stream(response, fd, start, None, hasher, result)
        finally:
            os.close(fd)
        if total is not None and end < total:
            raise _Retryable(f"the body ended after {end} of {total} bytes")

    def _stream(
        self,
        response: Any,
        fd: int,
        offset: int,
        limit: int | None,
        hasher: Any,
        result: FileResult,
        segment: list[int] | None = None,
    ) -> int:
        """Copy the body into ``fd`` at ``offset`` (at most ``limit`` bytes); returns the end
        offset. Reads go straight into a reused 1 MiB buffer; a cancel shuts the socket.
        ``segment[2]`` (bytes done in a segment) is kept current for a resume."""
        view = memoryview(self.buffers.get())
        body = _Body(response)
        position = offset
        remaining = limit
        lock = self.progress_lock
        with on_cancel(lambda: _shutdown(_socket_of(response))):
            try:
                while remaining is None or remaining > 0:
                    whole = remaining is None or remaining >= len(view)
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
                    if segment is not None:
                        segment[2] += n
                    checkpoint()
            except (_Urllib3Error, OSError, ValueError, http.client.HTTPException) as exc:
                checkpoint()  # a socket shut down by a cancel: raise Cancelled instead
                if isinstance(exc, OSError) and _is_disk_error(exc):
                    raise _Fatal(f"cannot write {exc.filename or 'the file'}: {exc}") from exc
                raise _Retryable(
                    f"the body ended after {position} bytes: {_describe_error(exc)}"
                ) from exc
        if body.short:
            raise _Retryable(f"the body ended after {position} bytes: the connection closed")
        if remaining is None and body.finish(closing=_will_close(response)):
            response.close()
            raise _TooLong("the server sent more bytes than its Content-Length")
        return position

    def _finish(
        self,
        job: _Job,
        final: str,
        part: str,
        result: FileResult,
        meta: dict[str, Any],
        hashed: str | None,
    ) -> None:
        size = os.path.getsize(part)
        expected_size = meta.get("size")
        if expected_size is not None and size != expected_size:
            _discard(part)
            raise _Retryable(f"the file has {size} bytes, the server announced {expected_size}")
        if job.expected is not None:
            algorithm, digest = job.expected
            actual = hashed if hashed is not None else _hash_file(part, algorithm)
            if actual != digest:
                _discard(part)
                raise _Fatal(f"{algorithm} mismatch: expected {digest}, got {actual}")
        name = job.name
        if meta.get("name"):
            name = self.names.claim(meta["name"], avoid_existing=True)
            final = inside(self.root, name)
        os.replace(part, final)  # only a complete, verified file gets the final name
        _Meta.remove(part)
        result.path = os.path.join(self.dest, name)
        result.size = size
        result.status = "done"

    # -- large files: parallel segments ----------------------------------------------------------
    def _segmented(
        self,
        job: _Job,
        final: str,
        part: str,
        result: FileResult,
        meta: dict[str, Any],
        response: Any,
        extra: int,
    ) -> None:
        total = meta["size"]
        count = 1 + extra
        step = math.ceil(total / count)
        meta["segments"] = [[i * step, min(total, (i + 1) * step), 0] for i in range(count)]
        flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_BINARY", 0)
        fd = os.open(part, flags, 0o644)
        try:
            os.ftruncate(fd, total)
            _Meta.save(part, meta)
            self._run_segments(job, part, fd, result, meta, first=response)
        finally:
            os.close(fd)
            response.release_conn()
        result.segments = count
        self._finish(job, final, part, result, meta, hashed=None)

    def _resume_segments(
        self, job: _Job, final: str, part: str, result: FileResult, meta: dict[str, Any]
    ) -> None:
        left = sum(1 for s in meta["segments"] if s[0] + s[2] < s[1])
        with self.slot(job.url):
            extra = self.try_extra_slots(job.url, max(0, left - 1))
            try:
                fd = os.open(part, os.O_WRONLY | getattr(os, "O_BINARY", 0))
                try:
                    result.resumed_from = sum(s[2] for s in meta["segments"])
                    self._run_segments(job, part, fd, result, meta, first=None, workers=1 + extra)
                finally:
                    os.close(fd)
            finally:
                self.release_slots(job.url, extra)
        result.segments = len(meta["segments"])
        self._finish(job, final, part, result, meta, hashed=None)

    def _run_segments(
        self,
        job: _Job,
        part: str,
        fd: int,
        result: FileResult,
        meta: dict[str, Any],
        first: Any,
        workers: int | None = None,
    ) -> None:
        segments: list[list[int]] = meta["segments"]
        try:
            with TaskGroup(name=f"segments of {job.name}", max_workers=workers) as group:
                for index, segment in enumerate(segments):
                    if segment[0] + segment[2] >= segment[1]:
                        continue
                    response = first if index == 0 and first is not None else None
                    group.spawn(self._segment, job, fd, segment, meta, response, result)
        except BaseExceptionGroup as group_error:
            fatal = [e for e in group_error.exceptions if isinstance(e, _Fatal)]
            if fatal:
                raise fatal[0] from group_error
            retryable = [e for e in group_error.exceptions if isinstance(e, _Retryable)]
            if retryable:
                raise retryable[0] from group_error
            raise
        finally:
            _Meta.save(part, meta)  # keeps every segment's progress for a resume

    def _segment(
        self,
        job: _Job,
        fd: int,
        segment: list[int],
        meta: dict[str, Any],
        response: Any,
        result: FileResult,
    ) -> None:
        start, end = segment[0], segment[1]
        attempts = 0
        while True:
            position = start + segment[2]
            try:
                if response is None:
                    response = self.open(
                        job.url,
                        {"Range": f"bytes={position}-{end - 1}", "If-Range": meta["etag"]},
                    )
                    if response.status != 206 or _range_start(response) != position:
                        status = response.status
                        response.close()
                        if status in _RETRY_STATUSES:
                            raise _Retryable(f"HTTP {status} for a segment")
                        raise _Fatal(f"the server stopped honouring ranges (HTTP {status})")
                try:
                    self._stream(response, fd, position, end - position, None, result, segment)
                finally:
                    if start + segment[2] < end:
                        response.close()  # a half-read connection cannot be reused
                    response.release_conn()
                    response = None
                if start + segment[2] >= end:
                    return
                raise _Retryable(f"a segment ended at {start + segment[2]} of {end}")
            except _Retryable:
                attempts += 1
                if attempts > self.retries:
                    raise
                sleep(self.backoff * 2 ** (attempts - 1) * (0.5 + random.random()))


def download(
    urls: Iterable[str],
    dest: str | os.PathLike[str] = ".",
    *,
    workers: int = 16,
    per_host: int = 8,
    retries: int = 5,
    timeout: float = 30.0,
    resume: bool = True,
    checksums: Mapping[str, str] | str | os.PathLike[str] | None = None,
    progress: bool | str | Callable[[DownloadReport], object] = False,
    backoff: float = 0.5,
    segments: bool = True,
) -> DownloadReport:
    """Download ``urls`` into ``dest`` in parallel; never raises for a single file's failure.

    Each file is written to ``name.part`` and renamed only when complete and verified.
    ``checksums`` maps URLs or file names to ``"sha256:<hex>"`` (or is a ``sha256sum``
    manifest). Ctrl-C raises ``DownloadInterrupted`` with the report; ``.part`` files stay
    and the next run resumes them.
    """
    url_list = list(urls)
    for url in url_list:
        if not isinstance(url, str):
            raise TypeError(f"urls must be strings, got {url!r}")
    folder = os.fspath(dest)
    workers_n = _validate.check_positive_int(workers, "workers")
    per_host_n = _validate.check_positive_int(per_host, "per_host")
    _validate.check_non_negative_int(retries, "retries")
    timeout_s = _validate.check_timeout(timeout)
    backoff_s = _validate.check_timeout(backoff, "backoff")
    os.makedirs(folder, exist_ok=True)
    loader = Downloader(
        folder,
        workers=workers_n or 16,
        per_host=per_host_n or 8,
        retries=retries,
        timeout=timeout_s if timeout_s is not None else 30.0,
        resume=bool(resume),
        checksums=load_checksums(checksums),
        backoff=backoff_s if backoff_s is not None else 0.5,
        segments=bool(segments),
    )
    jobs = loader.plan(url_list)
    report = DownloadReport(files=loader.results)
    started = time.monotonic()
    reporter = _start_progress(progress, report, started)
    try:
        for _ in tw_map(loader.fetch, jobs, workers=workers_n or 16, ordered=False, chunk_size=1):
            pass
    except KeyboardInterrupt:
        report.interrupted = True
        report.elapsed = time.monotonic() - started
        raise DownloadInterrupted(report) from None
    finally:
        report.elapsed = time.monotonic() - started
        if reporter is not None:
            reporter()
        loader.http.clear()
        loader.buffers.close_all()
    return report


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
