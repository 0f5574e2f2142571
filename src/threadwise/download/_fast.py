"""A lean HTTP/1.1 client for the common case: plain ``http://``, no proxy, a body with a
Content-Length. One request costs a few tens of microseconds of CPU here, several hundred
through urllib3 and http.client (their header parsing alone goes through the email package).
Everything else (TLS, proxies, chunked or compressed bodies) goes through urllib3.

Sockets are ``_socket.socket`` objects, made without the ``socket`` module (whose sockets derive
from them; urllib3's are such): see ``connect``."""

from __future__ import annotations

import _socket
import contextlib
import os
import select
import struct
import threading

from .._typing import Any

# Sockets here are in blocking mode with kernel timeouts (SO_RCVTIMEO): a read that waits too
# long fails with EAGAIN, and MSG_DONTWAIT reads take what is there without a poll() first
# (Python's own timeouts poll before every read).
AVAILABLE = hasattr(_socket, "MSG_DONTWAIT") and hasattr(_socket, "SO_RCVTIMEO")

_HEAD_MAX = 64 * 1024
_NO_BODY = frozenset({204, 304})


class Fallback(Exception):
    """The response needs the full client (a chunked body, no Content-Length)."""


class Headers(dict[str, str]):
    """Response headers, looked up by lower-case name."""

    def get(self, key: str, default: Any = None) -> Any:
        return dict.get(self, key.lower(), default)


class Response:
    """A response whose body is read straight from the socket into the caller's buffer."""

    __slots__ = (
        "_extra",
        "_left",
        "_pool",
        "_rest",
        "_reusable",
        "headers",
        "reason",
        "short",
        "sock",
        "status",
        "version",
    )

    def __init__(
        self,
        pool: Pool,
        sock: _socket.socket,
        status: int,
        reason: str,
        version: int,
        headers: Headers,
        rest: bytes,
        length: int,
    ) -> None:
        self._pool = pool
        self.sock: _socket.socket | None = sock
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers
        self._left = length
        self._extra = False
        if len(rest) > length:  # more than Content-Length arrived with the headers
            rest = rest[:length]
            self._extra = True
        self._rest = rest
        self.short = False
        connection = headers.get("connection", "").lower()
        self._reusable = version == 11 and "close" not in connection

    # -- the body -------------------------------------------------------------------------------
    @property
    def left(self) -> int:
        """Bytes of the body not read yet."""
        return self._left

    @property
    def consumed(self) -> bool:
        return self._left <= 0

    def readinto(self, target: memoryview) -> int:
        left = self._left
        if left <= 0:
            return 0
        if len(target) > left:
            target = target[:left]
        rest = self._rest
        if rest:
            n = min(len(rest), len(target))
            target[:n] = rest[:n]
            self._rest = rest[n:]
            self._left = left - n
            return n
        sock = self.sock
        if sock is None:
            raise ValueError("the connection is closed")
        # Fill the buffer as far as the data already there allows: one recv each.
        try:
            n = sock.recv_into(target)
        except BlockingIOError:
            raise TimeoutError("timed out") from None
        if not n:
            self.short = True
            return 0
        got = n
        size = len(target)
        while got < size:
            try:
                n = sock.recv_into(target[got:], 0, _socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                if got:
                    break  # what arrived is returned; the error shows on the next read
                raise
            if not n:
                break
            got += n
        self._left = left - got
        return got

    def splice_into(self, fd: int, offset: int, size: int, pipe: tuple[int, int]) -> int:
        """Move up to ``size`` bytes of the body into the file ``fd`` at ``offset`` without
        copying them through Python: socket -> ``pipe`` -> file (``os.splice``), one copy in
        the kernel instead of two through a buffer. Returns the bytes written, 0 at the end of
        the body. After an error the pipe may hold bytes: the caller closes it."""
        left = self._left
        if left <= 0:
            return 0
        size = min(size, left)
        rest = self._rest
        if rest:  # what arrived with the head: written as it is
            n = min(len(rest), size)
            written = 0
            while written < n:
                written += os.pwrite(fd, rest[written:n], offset + written)
            self._rest = rest[n:]
            self._left = left - n
            return n
        sock = self.sock
        if sock is None:
            raise ValueError("the connection is closed")
        reader, writer = pipe
        try:
            n = os.splice(sock.fileno(), writer, size, flags=os.SPLICE_F_MOVE)
        except BlockingIOError:  # SO_RCVTIMEO ran out
            raise TimeoutError("timed out") from None
        if not n:
            self.short = True
            return 0
        moved = 0
        while moved < n:
            moved += os.splice(
                reader, fd, n - moved, offset_dst=offset + moved, flags=os.SPLICE_F_MOVE
            )
        self._left = left - n
        return n

    def finish(self, *, closing: bool) -> bool:
        """True if the server sent more than its Content-Length (seen by a peek)."""
        if self._extra:
            return True
        sock = self.sock
        if sock is None or self._left > 0:
            return False
        try:
            if closing:
                readable, _, _ = select.select([sock], [], [], 0.25)
                if not readable:
                    return False
            return bool(sock.recv(1, _socket.MSG_PEEK | _socket.MSG_DONTWAIT))
        except (BlockingIOError, InterruptedError, OSError):
            return False

    # -- the connection -----------------------------------------------------------------------
    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def release(self, *, reuse: bool) -> None:
        """Back to the pool after a complete, clean exchange; closed otherwise."""
        sock = self.sock
        if sock is None:
            return
        if reuse and self._left > 0 and self._left <= 65536 and not self._extra:
            try:  # a short body left unread (an error page): read it away
                buffer = bytearray(self._left)
                view = memoryview(buffer)
                while self._left > 0:
                    n = self.readinto(view)
                    if not n:
                        break
            except OSError:
                reuse = False
        if reuse and self._reusable and self._left <= 0 and not self._extra:
            self.sock = None
            self._pool.put(sock)
        else:
            self.close()


def connect(host: str, port: int, timeout: float) -> _socket.socket:
    """``socket.create_connection((host, port), timeout)``, on ``_socket`` alone: the socket
    module's import (its enums) was a tenth of ``threadwise get``'s start-up. Each address in
    turn; the first error if none answers, as create_connection raises."""
    # An ASCII name as bytes: a str would load the idna codec (milliseconds).
    name: str | bytes = host.encode("ascii") if host.isascii() else host
    first: OSError | None = None
    for family, kind, proto, _, address in _socket.getaddrinfo(name, port, 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
        except OSError as exc:
            sock.close()
            if first is None:
                first = exc
            continue
        return sock
    if first is not None:
        raise first
    raise OSError("getaddrinfo returned no address")


SPLICE = hasattr(os, "splice")


def splice_pipe() -> tuple[int, int] | None:
    """A pipe for ``Response.splice_into``, as large as the system allows (up to 1 MiB: one
    splice per MiB); None where there is no splice."""
    if not SPLICE:
        return None
    reader, writer = os.pipe()
    try:
        import fcntl

        fcntl.fcntl(writer, fcntl.F_SETPIPE_SZ, 1 << 20)
    except (ImportError, AttributeError, OSError):
        pass  # the default pipe (64 KiB) does, with more splices
    return reader, writer


class Pool:
    """Kept-alive sockets to one host and port."""

    def __init__(self, host: str, port: int, timeout: float, keep: int) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._keep = keep
        self._idle: list[_socket.socket] = []
        self._lock = threading.Lock()
        self.host_header = host if port == 80 else f"{host}:{port}"
        if ":" in host and not host.startswith("["):
            self.host_header = f"[{host}]" if port == 80 else f"[{host}]:{port}"

    def take(self) -> _socket.socket | None:
        """An idle kept-alive socket that is still open, if there is one."""
        while True:
            with self._lock:
                sock = self._idle.pop() if self._idle else None
            if sock is None:
                return None
            # A kept-alive socket with something to read is closed (or broken): drop it.
            try:
                sock.recv(1, _socket.MSG_PEEK | _socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return sock  # nothing to read: alive and idle
            except OSError:
                pass
            with contextlib.suppress(OSError):
                sock.close()

    def get(self) -> tuple[_socket.socket, bool]:
        """A socket (and whether it is a reused one)."""
        sock = self.take()
        if sock is not None:
            return sock, True
        # An ASCII name as bytes: a str would load the idna codec (milliseconds).
        sock = connect(self.host, self.port, self.timeout)
        try:
            self.adopt(sock)
        except BaseException:
            sock.close()
            raise
        return sock, False

    def adopt(self, sock: _socket.socket) -> None:
        """Make a connected socket one of ours: blocking, with kernel timeouts."""
        sock.settimeout(None)
        seconds = int(self.timeout)
        wait = struct.pack("ll", seconds, int((self.timeout - seconds) * 1e6))
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVTIMEO, wait)
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_SNDTIMEO, wait)
        sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)

    def put(self, sock: _socket.socket) -> None:
        with self._lock:
            if len(self._idle) < self._keep:
                self._idle.append(sock)
                return
        sock.close()

    def clear(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for sock in idle:
            with contextlib.suppress(OSError):
                sock.close()


def request(
    pool: Pool, head: bytes, *, head_only: bool, using: list[_socket.socket] | None = None
) -> Response:
    """Send ``head`` (a complete request head) and read the response's head. A reused
    connection that the server closed in the meantime is replaced once, transparently.
    ``using`` gets the socket, so that a cancel can shut it down."""
    for attempt in (0, 1):
        sock, reused = pool.get()
        if using is not None:
            using.append(sock)
        try:
            sock.sendall(head)
            data = sock.recv(_HEAD_MAX)
            while b"\r\n\r\n" not in data:
                if not data or len(data) >= _HEAD_MAX:
                    break
                more = sock.recv(_HEAD_MAX)
                if not more:
                    break
                data += more
        except (ConnectionResetError, BrokenPipeError):
            sock.close()
            if reused and attempt == 0:
                continue
            raise
        except BlockingIOError:
            sock.close()
            raise TimeoutError("timed out") from None
        except BaseException:
            sock.close()
            raise
        if not data and reused and attempt == 0:
            sock.close()  # the server closed the idle connection just before our request
            continue
        end = data.find(b"\r\n\r\n")
        if end < 0:
            sock.close()
            if not data:
                raise ConnectionResetError("the server closed the connection without a response")
            raise ValueError("a response head that is too long or cut short")
        return _parse(pool, sock, data, end, head_only)
    raise AssertionError("unreachable")  # pragma: no cover


def parse_head(data: bytes | bytearray, end: int) -> tuple[int, str, int, Headers]:
    """(status, reason, version, headers) of the response head ``data[:end]``."""
    status_line, _, fields = data[:end].decode("latin-1").partition("\r\n")
    version_text, _, rest = status_line.partition(" ")
    code, _, reason = rest.partition(" ")
    if not version_text.startswith("HTTP/1.") or not code.isdigit():
        raise ValueError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
    headers = Headers()
    for line in fields.split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip().lower()
            if key in headers:  # a repeated field: its values joined, as RFC 9110 allows
                headers[key] = f"{headers[key]}, {value.strip()}"
            else:
                headers[key] = value.strip()
    return int(code), reason, 11 if version_text == "HTTP/1.1" else 10, headers


def _parse(pool: Pool, sock: _socket.socket, data: bytes, end: int, head_only: bool) -> Response:
    try:
        status, reason, version, headers = parse_head(data, end)
    except ValueError:
        sock.close()
        raise
    rest_bytes = data[end + 4 :]
    if head_only or status in _NO_BODY or 100 <= status < 200:
        length = 0
    else:
        if "transfer-encoding" in headers:
            sock.close()
            raise Fallback("a chunked body")
        text = headers.get("content-length", "")
        if not text.isdigit():
            sock.close()
            raise Fallback("no Content-Length")
        length = int(text)
    return Response(pool, sock, status, reason, version, headers, rest_bytes, length)
