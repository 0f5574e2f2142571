"""HTTP details of a download: reading a body with as little copying as Python allows,
and the headers and errors a downloader must understand."""

from __future__ import annotations

import _socket
import contextlib
import time

from .._typing import Any

_FILL_SECONDS = 0.1  # hand a partly filled buffer over after this long
_CLOSE_WAIT = 0.25  # seconds to wait for the end of a body on a closing connection


def _retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (a number or an HTTP date), uncapped."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _will_close(response: Any) -> bool:
    connection = str(response.headers.get("Connection", "")).lower()
    return "close" in connection or getattr(response, "version", 11) == 10


def _total_size(response: Any) -> int | None:
    content_range = response.headers.get("Content-Range", "")
    if "/" in content_range:
        tail = content_range.rsplit("/", 1)[1].strip()
        if tail.isdigit():
            return int(tail)
    length = response.headers.get("Content-Length")
    if response.status == 200 and length and length.strip().isdigit():
        return int(length)
    return None


def _range_start(response: Any) -> int | None:
    content_range = response.headers.get("Content-Range", "")
    unit, _, spec = content_range.partition(" ")
    first = spec.split("-", 1)[0].strip()
    return int(first) if unit == "bytes" and first.isdigit() else None


def _socket_of(response: Any) -> _socket.socket | None:
    own = getattr(response, "sock", None)  # our own client's responses
    if isinstance(own, _socket.socket):
        return own
    connection = getattr(response, "connection", None) or getattr(response, "_connection", None)
    sock = getattr(connection, "sock", None)
    return sock if isinstance(sock, _socket.socket) else None


def _shutdown(sock: _socket.socket | None) -> None:
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(_socket.SHUT_RDWR)


class _Body:
    """Reads a response body with as little copying as Python allows.

    For a plain body of known length we read the socket's buffered reader ourselves, straight
    into our buffer, and count the bytes; at the end one non-blocking peek tells whether the
    server sent more than its Content-Length (http.client would silently drop those bytes).
    Chunked or compressed bodies go through http.client / urllib3.
    """

    __slots__ = ("_error", "_fp", "_left", "_raw", "_response", "short")

    def __init__(self, response: Any) -> None:
        self._response = response
        raw = getattr(response, "_fp", None)  # http.client.HTTPResponse
        fp = getattr(raw, "fp", None)
        plain = (
            raw is not None
            and fp is not None
            and getattr(raw, "chunked", True) is False
            and isinstance(getattr(raw, "length", None), int)
            and hasattr(fp, "readinto")
            and not response.headers.get("Content-Encoding")
        )
        self._raw = raw if plain else None
        self._fp = fp if plain else None
        self._left: int = int(getattr(raw, "length", 0) or 0) if plain else 0
        self.short = False
        self._error: BaseException | None = None

    def readinto(self, target: memoryview) -> int:
        fp = self._fp
        if fp is None:
            return int(self._response._fp.readinto(target) if self._response._fp else 0)
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if self._left <= 0:
            return 0
        if len(target) > self._left:
            target = target[: self._left]
        # Fill the buffer with what arrives (readinto1: one read each), but hand it over at
        # least every _FILL_SECONDS: large writes on fast links, moving progress on slow ones.
        n = 0
        size = len(target)
        until = time.monotonic() + _FILL_SECONDS
        while n < size:
            try:
                got = fp.readinto1(target[n:])
            except Exception as exc:
                if not n:
                    raise
                # Keep what arrived before a reset or a stall: it is written, and the error
                # is raised by the next call.
                self._error = exc
                break
            if not got:
                if n == 0:
                    self.short = True  # the server closed before Content-Length bytes
                break
            n += got
            if time.monotonic() >= until:
                break
        self._left -= n
        return n

    @property
    def consumed(self) -> bool:
        """A plain body read to its Content-Length."""
        return self._fp is not None and self._left <= 0

    def finish(self, *, closing: bool) -> bool:
        """Close the body for reuse of the connection; True if extra bytes were waiting.

        On a connection the server closes after this response we read on to the end (a
        short wait), so late extra bytes are seen too; on a kept-alive one we can only peek
        at what has arrived (later bytes break the next request, which is then retried).
        """
        fp, raw = self._fp, self._raw
        if fp is None or raw is None or self._left > 0:
            return False
        extra = False
        sock = getattr(getattr(fp, "raw", None), "_sock", None)
        if isinstance(sock, _socket.socket):
            previous = sock.gettimeout()
            try:
                sock.settimeout(_CLOSE_WAIT if closing else 0)
                extra = bool(fp.read1(1) if closing else fp.peek(1))
            except (BlockingIOError, OSError, ValueError):
                extra = False
            finally:
                with contextlib.suppress(OSError):
                    sock.settimeout(previous)
        # Tell http.client the body is consumed, as its own reads would have.
        raw.length = 0
        close = getattr(raw, "_close_conn", None)
        if close is not None:
            close()
        return extra


def _describe_error(exc: BaseException) -> str:
    text = str(exc)
    lowered = text.lower()
    if "refused" in lowered:
        return "connection refused"
    if "timed out" in lowered or "timeout" in lowered:
        return f"timed out ({type(exc).__name__})"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
