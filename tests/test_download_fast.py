"""The downloader's own HTTP/1.1 client against a raw socket server that sends exactly the
bytes a test scripts: odd status lines, chunked bodies (handed to urllib3), HTTP/1.0, bodies
longer than announced, idle connections the server closed, stalls before the head."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from threadwise.download import DownloadReport, FileResult, _fast, download

Reply = Callable[[socket.socket, bytes, int], bool]  # (conn, request, n) -> keep the connection


class RawServer:
    """Accepts connections on 127.0.0.1; ``reply`` answers each request it reads."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.requests: list[bytes] = []
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._accepting = threading.Thread(target=self._accept, name="raw-server")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), name="raw-conn")
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                end = buffer.index(b"\r\n\r\n") + 4
                request, buffer = buffer[:end], buffer[end:]
                with self._lock:
                    self.requests.append(request)
                    n = len(self.requests)
                if not self.reply(conn, request, n):
                    return
        except OSError:
            return
        finally:
            conn.close()

    def __enter__(self) -> RawServer:
        self._accepting.start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close does not)
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            for conn in self._conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._accepting.join()
        for thread in self._threads:
            thread.join()


@pytest.fixture
def raw() -> Iterator[Callable[[Reply], RawServer]]:
    servers: list[RawServer] = []

    def start(reply: Reply) -> RawServer:
        server = RawServer(reply).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__()


def only(report: DownloadReport) -> FileResult:
    assert len(report.files) == 1
    return report.files[0]


BODY = b"0123456789" * 100


def ok(body: bytes = BODY, extra: bytes = b"", version: str = "HTTP/1.1") -> bytes:
    return f"{version} 200 OK\r\nContent-Length: {len(body)}\r\n".encode() + extra + b"\r\n" + body


def test_a_chunked_body_goes_through_urllib3(
    raw: Callable[[Reply], RawServer], tmp_path: Path
) -> None:
    def reply(conn: socket.socket, request: bytes, n: int) -> bool:
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(BODY[i : i + 300]), BODY[i : i + 300])
                          for i in range(0, len(BODY), 300))  # fmt: skip
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
        )
        return True

    server = raw(reply)
    report = download([f"{server.base}/a.bin", f"{server.base}/b.bin"], tmp_path, workers=1)
    assert report.ok, report
    assert (tmp_path / "a.bin").read_bytes() == BODY
    assert (tmp_path / "b.bin").read_bytes() == BODY
    assert len(server.requests) == 3  # the first asked twice: lean client, then urllib3


def test_no_content_length_goes_through_urllib3(
    raw: Callable[[Reply], RawServer], tmp_path: Path
) -> None:
    def reply(conn: socket.socket, request: bytes, n: int) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + BODY)
        return False

    server = raw(reply)
    result = only(download([f"{server.base}/a.bin"], tmp_path))
    assert result.status == "done", result.error
    assert (tmp_path / "a.bin").read_bytes() == BODY


def test_http_1_0_and_a_closed_idle_connection_are_handled(
    raw: Callable[[Reply], RawServer], tmp_path: Path
) -> None:
    def reply(conn: socket.socket, request: bytes, n: int) -> bool:
        if n == 1:
            conn.sendall(ok(version="HTTP/1.0"))
            return False  # HTTP/1.0: the client must not reuse it
        conn.sendall(ok())
        return n != 2  # after the second answer the server closes the idle connection

    server = raw(reply)
    urls = [f"{server.base}/{i}.bin" for i in range(4)]
    report = download(urls, tmp_path, workers=1)
    assert report.ok, report
    assert [(tmp_path / f"{i}.bin").read_bytes() for i in range(4)] == [BODY] * 4
    assert server.connections == 3


def test_a_body_longer_than_announced_in_the_head_read(
    raw: Callable[[Reply], RawServer], tmp_path: Path
) -> None:
    def reply(conn: socket.socket, request: bytes, n: int) -> bool:
        conn.sendall(ok() + b"garbage")
        return True

    server = raw(reply)
    result = only(download([f"{server.base}/a.bin"], tmp_path, retries=0))
    assert result.status == "failed"
    assert result.error == "the server sent more bytes than its Content-Length"


@pytest.mark.parametrize(
    ("head", "error"),
    [
        (b"SPDY/9 200 OK\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70_000, "too long or cut short"),
        (b"", "closed the connection without a response"),
    ],
)
def test_broken_heads_fail_the_file_clearly(
    raw: Callable[[Reply], RawServer], tmp_path: Path, head: bytes, error: str
) -> None:
    def reply(conn: socket.socket, request: bytes, n: int) -> bool:
        conn.sendall(head)
        return False

    server = raw(reply)
    result = only(download([f"{server.base}/a.bin"], tmp_path, retries=0))
    assert result.status == "failed"
    assert result.error is not None
    assert error in result.error


def test_no_head_in_time_is_a_timeout(raw: Callable[[Reply], RawServer], tmp_path: Path) -> None:
    release = threading.Event()

    def reply(conn: socket.socket, request: bytes, n: int) -> bool:
        release.wait(5)
        return False

    server = raw(reply)
    try:
        result = only(download([f"{server.base}/a.bin"], tmp_path, retries=0, timeout=0.3))
    finally:
        release.set()
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.startswith("no response from 127.0.0.1:")


def test_no_body_statuses_and_repeated_headers(
    raw: Callable[[Reply], RawServer], tmp_path: Path
) -> None:
    def reply(conn: socket.socket, request: bytes, n: int) -> bool:
        if n == 1:
            conn.sendall(b"HTTP/1.1 204 No Content\r\nX-A: 1\r\nX-A: 2\r\nbroken line\r\n\r\n")
        else:
            conn.sendall(ok())
        return True

    server = raw(reply)
    result = only(download([f"{server.base}/a.bin"], tmp_path, retries=0))
    assert result.status == "failed"
    assert result.error == "HTTP 204 No Content"


def test_the_headers_mapping_is_case_blind() -> None:
    headers = _fast.Headers({"etag": '"x"'})
    assert headers.get("ETag") == '"x"'
    assert headers.get("Missing", "d") == "d"


def test_a_cancel_shuts_a_socket_waiting_for_the_head(
    raw: Callable[[Reply], RawServer], tmp_path: Path
) -> None:
    release = threading.Event()

    def reply(conn: socket.socket, request: bytes, n: int) -> bool:
        release.wait(10)
        return False

    server = raw(reply)
    from threadwise import TaskGroup

    started = time.monotonic()
    try:
        with TaskGroup() as group:
            task = group.spawn(download, [f"{server.base}/a.bin"], tmp_path, timeout=30)
            time.sleep(0.3)
            group.cancel()
    finally:
        release.set()
    assert time.monotonic() - started < 5
    assert task.cancelled() or task.result().files[0].status == "cancelled"


def test_a_head_in_pieces_and_an_error_page_read_away(
    raw: Callable[[Reply], RawServer], tmp_path: Path
) -> None:
    def reply(conn: socket.socket, request: bytes, n: int) -> bool:
        if n == 1:  # a 404 with a body, on a connection that stays open
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 5000\r\n\r\n")
            time.sleep(0.05)
            conn.sendall(b"x" * 5000)
            return True
        head = ok()
        conn.sendall(head[:20])  # the head in two pieces
        time.sleep(0.05)
        conn.sendall(head[20:])
        return True

    server = raw(reply)
    report = download([f"{server.base}/missing", f"{server.base}/a.bin"], tmp_path, workers=1)
    assert [f.status for f in report.files] == ["failed", "done"]
    assert (tmp_path / "a.bin").read_bytes() == BODY
    assert server.connections == 1  # the error page was read away and the connection reused


def test_a_reset_on_a_reused_connection_is_retried_on_a_new_one(
    raw: Callable[[Reply], RawServer], tmp_path: Path
) -> None:
    def reply(conn: socket.socket, request: bytes, n: int) -> bool:
        if n == 2:  # a reset instead of the second answer
            conn.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            return False
        conn.sendall(ok())
        return True

    server = raw(reply)
    report = download([f"{server.base}/{i}.bin" for i in range(3)], tmp_path, workers=1)
    assert report.ok, report
    assert [f.attempts for f in report.files] == [1, 1, 1]
    assert server.connections == 2


def test_the_pool_keeps_at_most_its_size() -> None:
    pool = _fast.Pool("127.0.0.1", 1, 1.0, keep=1)
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    try:
        pool.put(a)
        pool.put(c)  # one too many: closed
        assert c.fileno() == -1
        assert a.fileno() != -1
        pool.clear()
        assert a.fileno() == -1
    finally:
        for sock in (a, b, c, d):
            sock.close()
    assert _fast.Pool("::1", 80, 1.0, 1).host_header == "[::1]"
    assert _fast.Pool("::1", 8080, 1.0, 1).host_header == "[::1]:8080"
    assert _fast.Pool("h", 8080, 1.0, 1).host_header == "h:8080"
