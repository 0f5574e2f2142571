"""A small HTTP/1.1 server on 127.0.0.1 serving generated files: the demo's "internet", and
the misbehaving servers the tests and benchmarks need (errors, throttling, cut, stalled and
reset bodies, Range handling, changing files, odd names, redirects, refused connections)."""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import http.server
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit


@dataclass
class ServedFile:
    """One path on the server and how it (mis)behaves."""

    data: bytes
    latency: float | None = None  # seconds before the headers; None: the server's default
    fail_times: int = 0  # answer the first N requests with `fail_status`
    fail_status: int = 500
    retry_after: str | None = None  # Retry-After header sent with failures
    status: int | None = None  # always answer this status (e.g. 404) with a short body
    cut_after: int | None = None  # close the connection after this many body bytes ...
    cut_times: int = 0  # ... for the first N requests
    ignore_range: bool = False
    accept_ranges: bool = True
    content_disposition: str | None = None
    redirect_to: str | None = None  # answer 302 with this Location
    extra_bytes: int = 0  # send more bytes than Content-Length announces
    stall_after: int | None = None  # send this many body bytes, then nothing (socket open) ...
    stall_times: int = 1  # ... for the first N requests
    reset_after: int | None = None  # send this many body bytes, then a TCP reset ...
    reset_times: int = 1  # ... for the first N requests
    drip: float | None = None  # bytes per second for this file (a slow drip)
    gzip: bool = False  # send the body gzip-compressed to clients that accept it
    etag: str = ""
    last_modified: float = 1_700_000_000.0  # sent as Last-Modified
    requests: int = 0
    range_requests: int = 0
    request_headers: list[dict[str, str]] = field(default_factory=list)  # of every request

    def __post_init__(self) -> None:
        if not self.etag:
            self.etag = '"' + hashlib.sha256(self.data).hexdigest()[:16] + '"'

    def change(self, data: bytes | None = None) -> None:
        """Replace the content (by default: other bytes of the same size), with a new ETag
        and a later Last-Modified, as a file edited on the server."""
        if data is None:
            data = bytes(b ^ 0xFF for b in self.data[:64]) + self.data[64:]
        self.data = data
        self.etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        self.last_modified += 60

    @property
    def http_date(self) -> str:
        return email.utils.formatdate(self.last_modified, usegmt=True)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def generated_bytes(name: str, size: int) -> bytes:
    """Deterministic pseudo-random content for a file name."""
    rng = random.Random(name)
    block = 1 << 24  # randbytes of more than 256 MiB overflows a C int
    return b"".join(rng.randbytes(min(block, size - i)) for i in range(0, size, block))


@dataclass
class _Stats:
    requests: int = 0
    bytes_sent: int = 0
    peak_concurrent: int = 0  # most requests being answered at once
    concurrent: int = 0
    connections: int = 0  # TCP connections accepted


class DemoServer:
    """``with DemoServer() as server: server.add("a.bin", size=1000); server.url("a.bin")``.

    ``latency`` delays every response's headers; ``bandwidth`` (bytes/s) throttles each
    response. Threads of its own: one accepting, one per open connection; ``stop()`` closes
    every connection and joins them all.
    """

    def __init__(self, *, latency: float = 0.0, bandwidth: float | None = None) -> None:
        self.latency = latency
        self.bandwidth = bandwidth
        self.files: dict[str, ServedFile] = {}
        self.stats = _Stats()
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- content -----------------------------------------------------------------------------
    def add(
        self, name: str, size: int | None = None, *, data: bytes | None = None, **behaviour: Any
    ) -> ServedFile:
        if data is None:
            data = generated_bytes(name, size or 0)
        served = ServedFile(data=data, **behaviour)
        self.files["/" + name.lstrip("/")] = served
        return served

    def url(self, name: str) -> str:
        return f"{self.base_url}/{quote(name.lstrip('/'))}"

    @staticmethod
    def refused_url(name: str = "nothing.bin") -> str:
        """A URL on a 127.0.0.1 port where nothing listens: connecting is refused."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        return f"http://127.0.0.1:{port}/{quote(name)}"

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> DemoServer:
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.app = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="demo-server"
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd = self._httpd
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        httpd.close_connections()
        if self._thread is not None:
            self._thread.join()
        self._httpd = None

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops SYNs when 16 clients connect at once, and
    # each dropped SYN costs the client a 1 s retransmission.
    request_queue_size = 256
    app: DemoServer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._open: set[socket.socket] = set()
        self._handlers: set[threading.Thread] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm
        # holds the body back until the client's delayed ACK (~40 ms) for every response.
        with contextlib.suppress(OSError):
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        thread = threading.Thread(
            target=self._serve, args=(request, client_address), name="demo-server-conn"
        )
        thread.daemon = True
        with self._open_lock:
            self._open.add(request)
            self._handlers.add(thread)
        with self.app._lock:
            self.app.stats.connections += 1
        thread.start()

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            pass  # a client that went away mid-response is normal for a download server
        finally:
            self.shutdown_request(request)
            with self._open_lock:
                self._open.discard(request)
                self._handlers.discard(threading.current_thread())

    def close_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
            handlers = list(self._handlers)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in handlers:
            thread.join()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server  # pyright: ignore[reportIncompatibleVariableOverride]

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests and the demo print their own output

    def do_HEAD(self) -> None:
        self._respond(head=True)

    def do_GET(self) -> None:
        self._respond(head=False)

    def _respond(self, *, head: bool) -> None:
        app = self.server.app
        with app._lock:
            app.stats.concurrent += 1
            app.stats.peak_concurrent = max(app.stats.peak_concurrent, app.stats.concurrent)
        try:
            self._respond_counted(head=head)
        finally:
            with app._lock:
                app.stats.concurrent -= 1

    def _respond_counted(self, *, head: bool) -> None:
        app = self.server.app
        path = unquote(urlsplit(self.path).path)
        served = app.files.get(path)
        attempt = 0
        with app._lock:
            app.stats.requests += 1
            if served is not None:
                served.requests += 1
                attempt = served.requests
                served.request_headers.append(dict(self.headers.items()))
        if served is None:
            self._plain(404, b"not found\n")
            return
        latency = app.latency if served.latency is None else served.latency
        if latency:
            time.sleep(latency)
        if served.redirect_to is not None:
            self.send_response(302)
            self.send_header("Location", served.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if served.status is not None:
            self._plain(served.status, b"no\n")
            return
        if attempt <= served.fail_times:
            headers = {"Retry-After": served.retry_after} if served.retry_after else {}
            self._plain(served.fail_status, b"try again later\n", headers)
            return
        data = served.data
        encoded = served.gzip and "gzip" in self.headers.get("Accept-Encoding", "")
        if encoded:
            import gzip

            data = gzip.compress(data, mtime=0)
        start, end, status = 0, len(data), 200
        since = self.headers.get("If-Modified-Since")
        if since is not None and since == served.http_date:
            self.send_response(304)
            self.send_header("ETag", served.etag)
            self.send_header("Last-Modified", served.http_date)
            self.end_headers()
            return
        range_header = self.headers.get("Range")
        if range_header and not served.ignore_range and served.accept_ranges:
            if_range = self.headers.get("If-Range")
            if if_range is None or if_range in (served.etag, served.http_date):
                parsed = _parse_range(range_header, len(data))
                if parsed is None:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start, end = parsed
                status = 206
                with app._lock:
                    served.range_requests += 1
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        self.send_header("ETag", served.etag)
        self.send_header("Last-Modified", served.http_date)
        if encoded:
            self.send_header("Content-Encoding", "gzip")
        if served.accept_ranges and not served.ignore_range:
            self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        if served.content_disposition is not None:
            self.send_header("Content-Disposition", served.content_disposition)
        self.end_headers()
        if head:
            return
        body = memoryview(data)[start:end]
        if served.stall_after is not None and attempt <= served.fail_times + served.stall_times:
            self._send(body[: served.stall_after])
            self.wfile.flush()
            # Hold the connection open, sending nothing, until the client gives up (or the
            # server stops).
            with contextlib.suppress(OSError):
                while self.connection.recv(1024):
                    pass
            self.close_connection = True
            return
        if served.reset_after is not None and attempt <= served.fail_times + served.reset_times:
            self._send(body[: served.reset_after])
            self.wfile.flush()
            # SO_LINGER with a zero timeout: close() sends RST, not FIN.
            time.sleep(0.05)  # let the client read what was sent: the RST discards the rest
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if served.drip is not None:
            self._send(body, served.drip)
            return
        if served.cut_after is not None and attempt <= served.fail_times + served.cut_times:
            self._send(body[: served.cut_after])
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if served.extra_bytes:  # one write, so the extra bytes arrive with the body
            self._send(memoryview(bytes(body) + b"x" * served.extra_bytes))
        else:
            self._send(body)

    def _send(self, body: memoryview, bandwidth: float | None = None) -> None:
        app = self.server.app
        if bandwidth is None:
            bandwidth = app.bandwidth
        if bandwidth is None:
            self.wfile.write(body)
        else:
            step = max(64, int(bandwidth / 50))  # ~50 writes a second
            started = time.monotonic()
            for offset in range(0, len(body), step):
                self.wfile.write(body[offset : offset + step])
                ahead = (offset + step) / bandwidth - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        with app._lock:
            app.stats.bytes_sent += len(body)

    def _plain(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` → [start, end); None if unsatisfiable."""
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    try:
        if first == "":
            n = int(last)
            return (max(0, size - n), size) if n > 0 and size else None
        start = int(first)
        end = int(last) + 1 if last else size
    except ValueError:
        return None
    if start >= size or end <= start:
        return None
    return start, min(end, size)
