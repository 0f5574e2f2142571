"""Small files over kept-alive connections, all driven by one thread.

On a fast link a small file takes less time than a GIL hand-off: sixteen threads fetching one
file each spend more on waking each other than the transfers take. Here one thread keeps up to
``workers`` non-blocking connections busy, reads each body (up to ``SMALL`` bytes) into memory
and writes it with one call, under the same rules as the threaded path: the body is written
to ``name.part`` and renamed only when its length (and checksum, if one is expected) is right.

Anything else goes back to the threaded path, with what was learned on the way: a redirect, a
big, chunked, compressed or renamed (Content-Disposition) body are simply asked for again
there; an error status, a timeout or a connection broken mid-body count as the first attempt,
and the bytes that arrived are kept for a ranged resume."""

from __future__ import annotations

import _socket
import contextlib
import errno
import os
import selectors
import sys
import time
from collections import deque
from collections.abc import Callable

from .. import _ki
from .._cancel import checkpoint, on_cancel
from .._typing import TYPE_CHECKING, Any
from . import _fast
from ._files import _discard

if TYPE_CHECKING:
    from ._download import Downloader, _Job

SMALL = 1 << 20  # the largest body read into memory (the threaded path keeps no sidecar below)
_READ = 256 * 1024  # bytes asked for per read of a response head (and what follows it)
_HEAD_MAX = 64 * 1024
_CLOSE_WAIT = 0.25  # seconds to wait for the end of a closing connection after its body
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)
# Stamp the validators through the open file (before the rename): no path lookups. (os.setxattr
# takes a descriptor wherever it exists, though os.supports_fd does not list it.)
_STAMP_BY_FD = os.utime in os.supports_fd and (
    not hasattr(os, "setxattr") or sys.platform.startswith("linux")
)

_get: Any = dict.get  # an unbound method: typed loosely
_SEP = os.sep

HandOver = Callable[["_Job", "Exception | None", "_fast.Response | None"], None]


class _Host:
    __slots__ = (
        "addresses",
        "connecting",
        "failed",
        "header",
        "jobs",
        "limit",
        "live",
        "name",
        "port",
    )

    def __init__(self, name: str, port: int, loader: Downloader) -> None:
        self.name = name
        self.port = port
        self.jobs: deque[tuple[_Job, bytes]] = deque()
        self.addresses: list[tuple[Any, ...]] | None = None
        self.connecting = 0  # connections still connecting (no request yet)
        self.live = 0  # connections open
        self.failed = False  # no new connections: the threaded path takes what is left
        self.limit = loader._host_limit(name.lower())
        bracketed = f"[{name}]" if ":" in name and not name.startswith("[") else name
        self.header = bracketed if port == 80 else f"{bracketed}:{port}"


class _Conn:
    __slots__ = (
        "address",
        "body",
        "closing",
        "deadline",
        "got",
        "head",
        "headers",
        "host",
        "job",
        "length",
        "pending",
        "request",
        "reusable",
        "served",
        "sock",
        "started",
        "view",
    )

    def __init__(self, host: _Host, sock: _socket.socket, address: int) -> None:
        self.host = host
        self.sock = sock
        self.address = address  # index into host.addresses
        self.job: _Job | None = None
        self.request = b""
        self.head = b""
        self.headers: _fast.Headers | None = None
        self.body: bytearray | None = None
        self.view: memoryview | None = None
        self.got = 0
        self.length = 0
        self.served = 0
        self.reusable = True
        self.deadline = 0.0
        self.started = 0.0
        self.pending = True  # connecting
        self.closing = False  # a whole body came on a closing connection: waiting for its end


class SmallFiles:
    """One batch of plain-http jobs. ``hand_over(job, error, response)`` passes a job to the
    threads: with the failure of an attempt made here, or with a response to carry on with."""

    def __init__(self, loader: Downloader, hand_over: HandOver) -> None:
        self.loader = loader
        self.hand_over = hand_over
        self.timeout = loader.o.timeout
        self.hosts: dict[tuple[str, int], _Host] = {}
        self.conns: set[_Conn] = set()
        self.selector = selectors.DefaultSelector()
        self.retried: set[int] = set()  # jobs already sent again after a stale keep-alive
        self.dirty = True  # connections may have to be opened
        # Connections whose next request waits for the end of this round of events: see
        # ``_send_all``.
        self.unsent: list[_Conn] = []
        self.raw = bytearray(_READ)
        self.buffer = memoryview(self.raw)

    # -- the batch -------------------------------------------------------------------------------
    def add(self, job: _Job, host: str, port: int, request: bytes) -> None:
        key = (host, port)
        entry = self.hosts.get(key)
        if entry is None:
            entry = self.hosts[key] = _Host(host, port, self.loader)
        entry.jobs.append((job, request))

    def run(self) -> None:
        wake_r, wake_w = _socketpair()
        wake_r.setblocking(False)
        self.selector.register(wake_r, selectors.EVENT_READ, None)

        def wake() -> None:
            with contextlib.suppress(OSError):
                wake_w.send(b"x")

        try:
            with on_cancel(wake):
                self._loop()
        finally:
            for conn in list(self.conns):
                job = conn.job
                if job is not None:
                    result = self.loader.results[job.index]
                    result.status = "cancelled"
                    result.error = "cancelled"
                self._close(conn)
            for host in self.hosts.values():  # after an exception: files never sent stay so
                host.jobs.clear()
            self.selector.close()
            wake_r.close()
            wake_w.close()

    def _loop(self) -> None:
        select = self.selector.select
        monotonic = time.monotonic
        # Deadlines are checked in sweeps a tenth of the timeout apart, not per event.
        sweep_every = min(1.0, max(0.01, self.timeout / 10))
        next_sweep = monotonic() + sweep_every
        while True:
            if self.dirty:
                self.dirty = False
                self._open_connections()
            if not self.conns:
                for host in self.hosts.values():
                    if host.failed and host.jobs:
                        self._give_up(host)
                if any(host.jobs for host in self.hosts.values()):
                    self._wait_for_a_slot()
                    continue
                return
            if self.unsent:
                self._send_all()
                continue  # a failed send may have closed connections or queued a job again
            events = select(max(0.0, next_sweep - monotonic()))
            checkpoint()
            now = monotonic()
            for key, mask in events:
                conn = key.data
                if conn is None or conn.sock is None:
                    continue  # the wake-up socket (checked above), or closed meanwhile
                if mask & selectors.EVENT_WRITE:
                    self._connected(conn, now)
                else:
                    self._readable(conn, now)
            if now >= next_sweep:
                next_sweep = now + sweep_every
                for conn in [c for c in self.conns if c.deadline <= now]:
                    self._timed_out(conn)

    # -- connections -------------------------------------------------------------------------------
    def _open_connections(self) -> None:
        loader = self.loader
        for host in self.hosts.values():
            while not host.failed and len(host.jobs) > host.connecting:
                if not loader.connections.acquire(blocking=False):
                    return
                if not host.limit.acquire(blocking=False):
                    loader.connections.release()
                    break
                self._connect(host, 0)

    def _wait_for_a_slot(self) -> None:
        """Every connection slot is held by the threads: wait (cancellably) for one."""
        host = next(h for h in self.hosts.values() if h.jobs)
        self.loader.connections.acquire()
        try:
            host.limit.acquire()
        except BaseException:
            self.loader.connections.release()
            raise
        self._connect(host, 0)

    def _connect(self, host: _Host, index: int) -> None:
        """Start a non-blocking connect to ``host`` (its slots are held: released on close),
        or take a connection the threads kept alive."""
        if index == 0:
            with self.loader._hosts_lock:
                pool = self.loader._fast_pools.get((host.name, host.port))
            sock = pool.take() if pool is not None else None
            if sock is not None:
                conn = _Conn(host, sock, 0)
                conn.pending = False
                conn.served = 1  # a kept-alive connection: may have been closed meanwhile
                sock.setblocking(False)
                host.live += 1
                self.conns.add(conn)
                self.selector.register(sock, selectors.EVENT_READ, conn)
                self._next(conn, time.monotonic())
                return
        if host.addresses is None:
            try:
                # An ASCII name as bytes: a str would load the idna codec (milliseconds).
                name: str | bytes = host.name
                if host.name.isascii():
                    name = host.name.encode("ascii")
                host.addresses = _socket.getaddrinfo(name, host.port, type=_socket.SOCK_STREAM)
            except (OSError, UnicodeError):
                host.addresses = []
        if index >= len(host.addresses):
            self._release_slots(host)
            host.failed = True
            if not host.live:
                self._give_up(host)
            return
        family, kind, proto, _, address = host.addresses[index]
        sock = _socket.socket(family, kind, proto)
        conn = _Conn(host, sock, index)
        try:
            sock.setblocking(False)
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            code = sock.connect_ex(address)
            if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
                raise OSError(code, os.strerror(code))
        except OSError:
            sock.close()
            self._connect(host, index + 1)
            return
        host.connecting += 1
        host.live += 1
        conn.deadline = time.monotonic() + self.timeout
        self.conns.add(conn)
        self.selector.register(sock, selectors.EVENT_WRITE, conn)

    def _connected(self, conn: _Conn, now: float) -> None:
        sock = conn.sock
        code = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR)
        host = conn.host
        if code:
            # Refused or unreachable at this address: the next one, with the same slots.
            conn.pending = False
            conn.sock = None  # type: ignore[assignment]
            host.connecting -= 1
            host.live -= 1
            self.conns.discard(conn)
            self.selector.unregister(sock)
            sock.close()
            self._connect(host, conn.address + 1)
            return
        self.selector.modify(sock, selectors.EVENT_READ, conn)
        conn.pending = False
        host.connecting -= 1
        self._next(conn, now)

    def _give_up(self, host: _Host) -> None:
        """Nothing to connect to: the threaded path tries again and tells why."""
        host.failed = True
        while host.jobs:
            job, _ = host.jobs.popleft()
            self.hand_over(job, None, None)

    def _release_slots(self, host: _Host) -> None:
        host.limit.release()
        self.loader.connections.release()

    def _close(self, conn: _Conn) -> None:
        sock = conn.sock
        if sock is None:
            return
        self._detach(conn)
        with contextlib.suppress(OSError):
            sock.close()
        self._release_slots(conn.host)

    def _detach(self, conn: _Conn) -> _socket.socket:
        """Take the connection out of the loop; its socket and slots are the caller's."""
        sock = conn.sock
        conn.sock = None  # type: ignore[assignment]
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.selector.unregister(sock)
        self.conns.discard(conn)
        host = conn.host
        if conn.pending:
            conn.pending = False
            host.connecting -= 1
        host.live -= 1
        self.dirty = True
        if host.failed and not host.live and host.jobs:
            self._give_up(host)
        return sock

    # -- requests ----------------------------------------------------------------------------------
    def _next(self, conn: _Conn, now: float) -> None:
        """Queue the next request of the connection's host (sent by ``_send_all``), or close the
        connection when none is left."""
        host = conn.host
        loader = self.loader
        while host.jobs:
            job, request = host.jobs.popleft()
            if loader.disk_full.is_set():
                loader.fetch(job)  # fails at once: "not started: the disk is full"
                continue
            conn.job = job
            conn.request = request
            conn.head = b""
            conn.body = conn.view = conn.headers = None
            conn.got = 0
            conn.started = now
            conn.deadline = now + self.timeout
            self.unsent.append(conn)
            return
        conn.job = None
        self._close(conn)

    def _send_all(self) -> None:
        """Send the requests queued by ``_next`` during a round of events, together.

        A send on loopback wakes the server at once, and a woken server takes the CPU from
        this thread: one send per file as each body is written meant a switch to the server
        and back per file. Sent together after the round, the server can answer them while this
        thread waits in ``select``, and is switched to less often (5,000 files of 16-64 KiB
        from nginx on loopback: ~12% less wall and CPU time)."""
        unsent = self.unsent
        self.unsent = []
        for conn in unsent:
            if conn.sock is None or conn.job is None:
                continue
            request = conn.request
            try:
                sent = conn.sock.send(request)
            except OSError as exc:
                self._broken(conn, exc)
                continue
            if sent != len(request):  # a request head fits an empty send buffer: never here
                self._broken(conn, BlockingIOError("the request did not fit the send buffer"))

    def _readable(self, conn: _Conn, now: float) -> None:
        sock = conn.sock
        job = conn.job
        if job is None:  # an idle connection has something to say: closed, or garbage
            self._close(conn)
            return
        if conn.closing:
            try:
                extra = sock.recv(1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                extra = b""
            if extra:
                self._close(conn)
                self._fail(job, _too_long())
            else:
                assert conn.view is not None
                self._accept(conn, conn.view[: conn.length], now)
            return
        view = conn.view
        if view is not None:  # the body, read straight into its buffer
            try:
                n = sock.recv_into(view[conn.got :])
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._broken(conn, exc)
                return
            if not n:
                self._broken(conn, None)
                return
            conn.got += n
            conn.deadline = now + self.timeout
            self.loader.results[job.index].bytes = min(conn.got, conn.length)
            if conn.got >= conn.length:
                self._complete(conn, now)
            return
        # The head, and mostly the whole body with it, lands in one buffer shared by every
        # connection: a body that is all there is written from it, without a copy.
        try:
            n = sock.recv_into(self.buffer)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._broken(conn, exc)
            return
        if not n:
            self._broken(conn, None)
            return
        conn.deadline = now + self.timeout
        data: bytes | bytearray = self.raw
        if conn.head:  # the head came in pieces
            data = conn.head + self.raw[:n]
            n = len(data)
        end = data.find(b"\r\n\r\n", 0, n)
        if end < 0:
            if n >= _HEAD_MAX:
                self._close(conn)
                self.hand_over(job, None, None)  # the threaded path reads it again and says why
            else:
                conn.head = bytes(data[:n])
            return
        self._head(conn, data, end, n, now)

    def _head(self, conn: _Conn, data: bytes | bytearray, end: int, n: int, now: float) -> None:
        job = conn.job
        assert job is not None
        loader = self.loader
        try:
            status, reason, version, headers = _fast.parse_head(data, end)
        except (ValueError, UnicodeError):
            self._close(conn)
            self.hand_over(job, None, None)
            return
        if conn.served == 0:
            loader.note_answered(job.host)
        conn.headers = headers
        # (dict.get: the names are lower case already, Headers.get would lower them again)
        conn.reusable = version == 11 and "close" not in _get(headers, "connection", "").lower()
        length_text = _get(headers, "content-length", "")
        no_body = status in (204, 304) or 100 <= status < 200
        if not no_body and ("transfer-encoding" in headers or not length_text.isdigit()):
            # Bodies the lean client cannot read: this host's files all go to urllib3.
            self._close(conn)
            loader.use_urllib3_for(job.host)
            conn.host.failed = True
            self.hand_over(job, None, None)
            if not conn.host.live:
                self._give_up(conn.host)
            return
        if (
            status != 200
            or int(length_text) > SMALL
            or _get(headers, "content-encoding", "identity").lower() not in ("", "identity")
            or (_get(headers, "content-disposition") and not job.named)
        ):
            # An error status, a redirect, a big, compressed or renamed file: the threaded path
            # carries on with this response (and the connection slot it holds).
            length = 0 if no_body else int(length_text)
            sock = self._detach(conn)
            pool = loader.fast_pool(conn.host.name, conn.host.port)
            try:
                pool.adopt(sock)
            except OSError:
                sock.close()
                self._release_slots(conn.host)
                loader.results[job.index].attempts += 1
                self.hand_over(job, loader._connection_error(job.url, ConnectionResetError()), None)
                return
            response = _fast.Response(
                pool, sock, status, reason, version, headers, bytes(data[end + 4 : n]), length
            )
            self.hand_over(job, None, response)
            return
        length = int(length_text)
        start = end + 4
        got = n - start
        result = loader.results[job.index]
        result.resumed_from = 0
        conn.length = length
        if got == length and conn.reusable:  # the whole body is here (the common case)
            result.attempts += 1
            self._accept(conn, memoryview(data)[start:n], now)
            return
        # One byte more than announced fits the buffer: a server that sends too much shows.
        got = min(got, length + 1)
        body = bytearray(length + 1)
        body[:got] = memoryview(data)[start : start + got]
        conn.body = body
        conn.view = memoryview(body)
        conn.got = got
        result.bytes = min(got, length)
        if got >= length:
            self._complete(conn, now)

    def _complete(self, conn: _Conn, now: float) -> None:
        job = conn.job
        assert job is not None
        assert conn.view is not None
        assert conn.headers is not None
        loader = self.loader
        result = loader.results[job.index]
        result.attempts += 1
        if conn.got > conn.length:
            self._close(conn)
            self._fail(job, _too_long())
            return
        if not conn.reusable:
            # The server closes after this body: bytes beyond its length may still come.
            conn.closing = True
            conn.deadline = now + _CLOSE_WAIT
            return
        self._accept(conn, conn.view[: conn.length], now)

    def _accept(self, conn: _Conn, body: memoryview, now: float) -> None:
        job = conn.job
        assert job is not None
        assert conn.headers is not None
        result = self.loader.results[job.index]
        headers = conn.headers
        conn.view = None
        conn.body = None
        conn.served += 1
        if self._write(job, body, headers):
            result.size = conn.length
            result.bytes = conn.length
            result.status = "done"
            result.error = None
            result.note = None
            result.seconds = now - conn.started
        if conn.reusable:
            self._next(conn, now)
        else:
            conn.job = None
            self._close(conn)

    def _write(self, job: _Job, body: memoryview, headers: _fast.Headers) -> bool:
        """``name.part``, then the final name: False (and the job failed) on an error."""
        loader = self.loader
        if job.expected is not None:
            import hashlib

            algorithm, digest = job.expected
            actual = hashlib.new(algorithm, body).hexdigest()
            if actual != digest:
                from ._download import _Fatal

                self._fail(job, _Fatal(f"{algorithm} mismatch: expected {digest}, got {actual}"))
                return False
        root = job.root
        # os.path.join(root, name), for a name of one plain component
        final = f"{root}{_SEP}{job.name}" if root[-1:] != _SEP else root + job.name
        part = final + ".part"
        meta = {"etag": _get(headers, "etag"), "last_modified": _get(headers, "last-modified")}
        try:
            fd = os.open(part, _OPEN_FLAGS, 0o644)
            try:
                loader.write_at(fd, body, 0)
                if _STAMP_BY_FD:
                    loader._stamp(fd, meta)
            finally:
                os.close(fd)
            os.replace(part, final)  # only a complete, verified file gets the final name
            if not _STAMP_BY_FD:  # pragma: no cover - platforms without fd-based calls
                loader._stamp(final, meta)
        except OSError as exc:
            _discard(part)
            error = loader._disk_error(exc, job)
            from ._download import _DiskFull

            if isinstance(error, _DiskFull):
                loader.disk_full.set()
            self._fail(job, error)
            return False
        return True

    def _fail(self, job: _Job, error: Exception) -> None:
        """A final failure (no retry would help): recorded as the threaded path does."""
        self.loader.fetch(job, error)

    # -- trouble ---------------------------------------------------------------------------------
    def _timed_out(self, conn: _Conn) -> None:
        job = conn.job
        if job is None:  # still connecting
            conn.host.failed = True
            self._close(conn)
            return
        if conn.closing:  # no more bytes came: the body was the whole answer
            assert conn.view is not None
            self._accept(conn, conn.view[: conn.length], time.monotonic())
            return
        self._broken(conn, TimeoutError("timed out"))

    def _broken(self, conn: _Conn, exc: OSError | None) -> None:
        """The connection failed (``exc``) or closed (None) during the job's exchange."""
        job = conn.job
        assert job is not None
        loader = self.loader
        served = conn.served
        got = min(conn.got, conn.length) if conn.view is not None else 0
        headers = conn.headers
        in_body = conn.view is not None
        body = conn.view
        conn.job = None
        conn.view = None
        conn.body = None
        self._close(conn)
        if (
            not in_body
            and not conn.head
            and served
            and job.index not in self.retried
            and (exc is None or isinstance(exc, ConnectionResetError | BrokenPipeError))
        ):
            # A kept-alive connection the server closed just before our request: again, on a
            # new connection (once), as any client does.
            self.retried.add(job.index)
            conn.host.jobs.appendleft((job, conn.request))
            return
        result = loader.results[job.index]
        result.attempts += 1
        if not in_body:
            reason = (
                exc
                if exc is not None
                else ConnectionResetError("the server closed the connection without a response")
            )
            self.hand_over(job, loader._connection_error(job.url, reason), None)
            return
        from ._download import _Retryable

        error: Exception
        if exc is None:
            error = _Retryable(f"the body ended after {got} bytes: the connection closed")
        else:
            error = loader._read_error(exc, got)
        assert headers is not None
        assert body is not None
        etag = headers.get("etag")
        last_modified = headers.get("last-modified")
        if got and (etag or last_modified):
            # Keep what arrived: the retry asks for the rest with Range and If-Range.
            part = os.path.join(job.root, job.name) + ".part"
            try:
                fd = os.open(part, _OPEN_FLAGS, 0o644)
                try:
                    loader.write_at(fd, body[:got], 0)
                finally:
                    os.close(fd)
            except OSError:
                _discard(part)
            else:
                job.meta = {
                    "url": job.url,
                    "etag": etag,
                    "last_modified": last_modified,
                    "size": conn.length,
                    "segments": [[0, conn.length, got]],
                }
                result.bytes = got
        self.hand_over(job, error, None)


def _socketpair() -> tuple[_socket.socket, _socket.socket]:
    pair = getattr(_socket, "socketpair", None)  # Unix; typeshed lists it in socket only
    if pair is None:  # pragma: no cover - Windows: the socket module's emulation
        import socket

        return socket.socketpair()
    result: tuple[_socket.socket, _socket.socket] = pair()
    return result


def _too_long() -> Exception:
    from ._download import _TooLong

    return _TooLong("the server sent more bytes than its Content-Length")


# The loop runs in the main thread, where Ctrl-C lands between any two bytecodes: between a
# file's rename to its final name and its result set to done, the run would report as
# cancelled a file that is complete on disk. The interrupt waits until both are done.
_ki.protected(SmallFiles._write)
_ki.protected(SmallFiles._accept)
