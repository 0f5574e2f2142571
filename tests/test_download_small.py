"""The small-file path: one thread drives kept-alive connections for plain-http files of up to
``_small.SMALL`` bytes and hands what it does not finish to the worker threads."""

from __future__ import annotations

import hashlib
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from hostile_server import HostileServer

from threadwise.download import DemoServer, FileResult, _small, download
from threadwise.download import _download as download_module

KiB = 1024


@pytest.fixture
def fetches(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs the worker threads were given (the small-file loop finishes the others)."""
    seen: list[str] = []
    lock = threading.Lock()
    original = download_module.Downloader.fetch

    def fetch(self: Any, job: Any, *args: Any) -> FileResult:
        with lock:
            seen.append(job.url)
        return original(self, job, *args)

    monkeypatch.setattr(download_module.Downloader, "fetch", fetch)
    return seen


def test_small_files_take_the_loop_and_reuse_connections(
    tmp_path: Path, fetches: list[str]
) -> None:
    with DemoServer() as server:
        served = {f"f{i}.bin": server.add(f"f{i}.bin", 1000 + 97 * i) for i in range(40)}
        report = download([server.url(name) for name in served], tmp_path, workers=4)
        connections = server.stats.connections
    assert report.ok, report
    assert fetches == []  # no file needed a worker thread
    for name, file in served.items():
        assert (tmp_path / name).read_bytes() == file.data
        assert file.requests == 1
    assert [f.attempts for f in report.files] == [1] * 40
    assert all(f.status == "done" and f.size == f.bytes for f in report.files)
    assert connections <= 4  # 40 files over at most `workers` kept-alive connections
    assert not list(tmp_path.glob("*.part"))


def test_a_reset_mid_body_keeps_the_bytes_and_resumes_with_range(
    hostile: HostileServer, tmp_path: Path, fetches: list[str]
) -> None:
    size = 300 * KiB
    served = hostile.reset("r.bin", size, after=100_000)
    report = download([hostile.url("r.bin")], tmp_path, retries=2, backoff=0)
    result = report.files[0]

    assert result.status == "done", result.error
    assert fetches == [hostile.url("r.bin")]  # the loop handed the retry to a worker
    ranges = [h.get("Range") for h in served.request_headers]
    assert ranges == [None, f"bytes=100000-{size - 1}"]
    assert result.attempts == 2
    assert result.resumed_from == 100_000
    assert result.bytes == size  # nothing received twice
    assert hashlib.sha256((tmp_path / "r.bin").read_bytes()).hexdigest() == served.sha256


def test_a_stall_mid_body_is_a_timeout_and_the_retry_resumes(
    hostile: HostileServer, tmp_path: Path
) -> None:
    served = hostile.stall("s.bin", 200 * KiB, after=30_000)
    result = download([hostile.url("s.bin")], tmp_path, retries=2, timeout=0.5, backoff=0).files[0]

    assert result.status == "done", result.error
    assert [h.get("Range") for h in served.request_headers] == [
        None,
        f"bytes=30000-{200 * KiB - 1}",
    ]
    assert (tmp_path / "s.bin").read_bytes() == served.data


class ClosingServer:
    """Answers one request per connection without saying so (no ``Connection: close``), as a
    server does whose keep-alive timeout just ran out."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.thread = threading.Thread(target=self.serve)

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    more = conn.recv(4096)
                    if not more:
                        break
                    data += more
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(self.body)}\r\n\r\n"
                conn.sendall(head.encode() + self.body)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def __exit__(self, *exc: object) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.thread.join()


def test_a_kept_alive_connection_closed_by_the_server_is_replaced_silently(
    tmp_path: Path, fetches: list[str]
) -> None:
    body = b"x" * 5000
    server = ClosingServer(body)
    with server as base:
        report = download([f"{base}/{i}.bin" for i in range(3)], tmp_path, workers=1)
    assert report.ok, report
    assert fetches == []
    assert [f.attempts for f in report.files] == [1, 1, 1]  # no attempt lost to a stale socket
    assert server.connections == 3
    assert all((tmp_path / f"{i}.bin").read_bytes() == body for i in range(3))


def test_big_and_redirected_files_continue_on_the_loops_response(tmp_path: Path) -> None:
    with DemoServer() as server:
        big = server.add("big.bin", _small.SMALL + 1)
        target = server.add("target.bin", 3000)
        hop = server.add("hop.bin", 10, redirect_to="/target.bin")
        missing = server.add("missing.bin", 10, status=404)
        names = ["big.bin", "hop.bin", "missing.bin"]
        report = download([server.url(n) for n in names], tmp_path, workers=2, retries=1)
    statuses = {Path(f.url).name: f.status for f in report.files}
    assert statuses == {"big.bin": "done", "hop.bin": "done", "missing.bin": "failed"}
    assert "404" in (report.files[2].error or "")
    # Each was asked for once: the threads carried on with the response the loop read.
    assert (big.requests, hop.requests, target.requests, missing.requests) == (1, 1, 1, 1)
    assert (tmp_path / "big.bin").read_bytes() == big.data
    assert (tmp_path / "hop.bin").read_bytes() == target.data  # named after the URL asked for


def test_a_checksum_mismatch_on_the_loop_fails_and_keeps_no_file(tmp_path: Path) -> None:
    with DemoServer() as server:
        server.add("a.bin", 2000)
        url = server.url("a.bin")
        report = download([url], tmp_path, checksums={url: "sha256:" + "0" * 64})
    result = report.files[0]
    assert result.status == "failed"
    assert "sha256 mismatch" in (result.error or "")
    assert list(tmp_path.iterdir()) == []
