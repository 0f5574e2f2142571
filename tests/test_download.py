"""The downloader against real HTTP servers on 127.0.0.1: the embedded ``DemoServer`` with its
misbehaviour knobs, and a tiny scripted server where a test needs to see each request."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from threadwise.download import DemoServer, DownloadReport, FileResult, download

KiB = 1024
MiB = 1024 * KiB


# -- helpers -------------------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[DemoServer]:
    with DemoServer() as demo:
        yield demo


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    """A destination two levels below ``tmp_path``: anything escaping it shows up above."""
    return tmp_path / "outer" / "dest"


def sha256_of(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def only(report: DownloadReport) -> FileResult:
    assert len(report.files) == 1
    return report.files[0]


def final_files(folder: Path) -> list[str]:
    """Names in ``folder`` that are not work-in-progress files."""
    return sorted(name for name in os.listdir(folder) if not name.endswith((".part", ".part.json")))


def write_part(dest: Path, name: str, data: bytes, sidecar: Mapping[str, object]) -> None:
    """What an interrupted earlier run leaves behind: ``name.part`` and its JSON sidecar."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / f"{name}.part").write_bytes(data)
    (dest / f"{name}.part.json").write_text(json.dumps(sidecar), encoding="utf-8")


def unused_port() -> int:
    """A port that was just bound and closed: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Seen:
    """One request as a scripted server received it."""

    at: float  # time.monotonic() when the request line arrived
    path: str
    headers: dict[str, str]


Respond = Callable[[http.server.BaseHTTPRequestHandler, int], None]


@dataclass
class Scripted:
    base_url: str
    requests: list[Seen] = field(default_factory=list)


class _ScriptedHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers after a test

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        server = self.server
        assert isinstance(server, _ScriptedServer)
        with server.lock:
            server.record.requests.append(
                Seen(time.monotonic(), self.path, {k.lower(): v for k, v in self.headers.items()})
            )
            number = len(server.record.requests)
        server.respond(self, number)


class _ScriptedServer(http.server.ThreadingHTTPServer):
    def __init__(self, respond: Respond) -> None:
        super().__init__(("127.0.0.1", 0), _ScriptedHandler)
        self.respond = respond
        self.lock = threading.Lock()
        self.record = Scripted(f"http://127.0.0.1:{self.server_address[1]}")


@pytest.fixture
def scripted() -> Iterator[Callable[[Respond], Scripted]]:
    """``scripted(respond)`` starts a server calling ``respond(handler, n)`` for request n."""
    servers: list[tuple[_ScriptedServer, threading.Thread]] = []

    def start(respond: Respond) -> Scripted:
        httpd = _ScriptedServer(respond)
        thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="scripted-server"
        )
        thread.start()
        servers.append((httpd, thread))
        return httpd.record

    yield start
    for httpd, thread in servers:
        httpd.shutdown()
        httpd.server_close()  # joins the request threads
        thread.join()


def send(
    handler: http.server.BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    headers: dict[str, str] | None = None,
) -> None:
    handler.send_response(status)
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


# -- many files, concurrency limits --------------------------------------------------------------


def test_many_files_with_latency_all_arrive_intact(server: DemoServer, dest: Path) -> None:
    server.latency = 0.05
    served = {f"f{i:02}.bin": server.add(f"f{i:02}.bin", 16 * KiB + i) for i in range(40)}
    report = download([server.url(name) for name in served], dest, workers=8)

    assert report.ok, str(report)
    assert report.count("done") == 40
    assert final_files(dest) == sorted(served)
    for result in report.files:
        assert result.path is not None
        name = os.path.basename(result.path)
        assert sha256_of(result.path) == served[name].sha256
        assert result.size == result.bytes == len(served[name].data)
        assert result.attempts == 1
    assert 2 <= server.stats.peak_concurrent <= 8
    assert report.total_bytes == sum(len(s.data) for s in served.values())


def test_per_host_limit_caps_connections_to_one_host(server: DemoServer, dest: Path) -> None:
    server.latency = 0.1
    names = [f"h{i}.bin" for i in range(10)]
    for name in names:
        server.add(name, 4 * KiB)
    report = download([server.url(n) for n in names], dest, workers=8, per_host=2)

    assert report.ok, str(report)
    assert server.stats.peak_concurrent == 2  # never more, and the limit is actually used


# -- retries -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fail_status", [500, 503])
def test_server_errors_are_retried_then_succeed(
    server: DemoServer, dest: Path, fail_status: int
) -> None:
    served = server.add("flaky.bin", 50 * KiB, fail_times=2, fail_status=fail_status)
    result = only(download([server.url("flaky.bin")], dest, retries=3, backoff=0.01))

    assert result.status == "done", result.error
    assert result.attempts == 3 == served.requests
    assert sha256_of(dest / "flaky.bin") == served.sha256


def test_server_errors_beyond_the_retries_fail(server: DemoServer, dest: Path) -> None:
    served = server.add("down.bin", 1 * KiB, fail_times=10, fail_status=503)
    result = only(download([server.url("down.bin")], dest, retries=2, backoff=0.01))

    assert result.status == "failed"
    assert result.error is not None
    assert "503" in result.error
    assert result.attempts == 3 == served.requests
    assert final_files(dest) == []


def test_429_waits_for_retry_after(scripted: Callable[[Respond], Scripted], dest: Path) -> None:
    body = os.urandom(10 * KiB)

    def respond(handler: http.server.BaseHTTPRequestHandler, n: int) -> None:
        if n == 1:
            send(handler, 429, b"slow down\n", {"Retry-After": "1"})
        else:
            send(handler, 200, body)

    record = scripted(respond)
    # backoff=0.01: without Retry-After the second request would follow almost at once.
    result = only(download([record.base_url + "/limited.bin"], dest, retries=3, backoff=0.01))

    assert result.status == "done", result.error
    assert result.attempts == 2
    first, second = record.requests
    assert second.at - first.at >= 1.0
    assert (dest / "limited.bin").read_bytes() == body


def test_404_is_not_retried(server: DemoServer, dest: Path) -> None:
    served = server.add("missing.bin", 10, status=404)
    result = only(download([server.url("missing.bin")], dest, retries=5, backoff=0.01))

    assert result.status == "failed"
    assert result.error is not None
    assert "404" in result.error
    assert result.attempts == 1
    assert served.requests == 1
    assert os.listdir(dest) == []


def test_refused_connection_fails_at_once_like_curl_and_wget2(dest: Path) -> None:
    # Regression (issue 12, bug 8): a refused connection used to take every retry with
    # backoff (17.5 s with the defaults). Nothing listens there: fail at once.
    port = unused_port()
    url = f"http://127.0.0.1:{port}/nothing.bin"
    started = time.monotonic()
    result = only(download([url], dest, retries=5, backoff=2.0))

    assert time.monotonic() - started < 1.5  # the first backoff alone would be >= 1 s
    assert result.status == "failed"
    assert result.error == f"connection refused by 127.0.0.1:{port}"
    assert result.attempts == 1
    assert final_files(dest) == []


@pytest.mark.timeout(15)
def test_dns_failure_fails_clearly(dest: Path) -> None:
    started = time.monotonic()
    report = download(["http://no-such-host.invalid/file.bin"], dest, retries=2, backoff=0.01)
    result = only(report)

    assert result.status == "failed"
    assert result.error is not None
    assert "resolve" in result.error
    assert "no-such-host.invalid" in result.error
    assert time.monotonic() - started < 10  # a clear failure, not a hang
    assert final_files(dest) == []


def test_one_failure_does_not_stop_the_batch(server: DemoServer, dest: Path) -> None:
    good = server.add("good.bin", 20 * KiB)
    server.add("bad.bin", 10, status=404)
    report = download([server.url("bad.bin"), server.url("good.bin")], dest, backoff=0.01)

    assert [f.status for f in report.files] == ["failed", "done"]
    assert not report.ok
    assert report.failures() == [report.files[0]]
    assert sha256_of(dest / "good.bin") == good.sha256


# -- resume ------------------------------------------------------------------------------------


def test_a_body_cut_short_is_resumed(server: DemoServer, dest: Path) -> None:
    served = server.add("cut.bin", 2 * MiB, cut_after=MiB, cut_times=1)
    result = only(download([server.url("cut.bin")], dest, retries=3, backoff=0.01))

    assert result.status == "done", result.error
    assert result.attempts == 2 == served.requests
    assert served.range_requests >= 1  # the second request asked for the rest only
    assert 0 < result.resumed_from <= MiB
    assert sha256_of(dest / "cut.bin") == served.sha256
    assert os.listdir(dest) == ["cut.bin"]


@pytest.mark.parametrize("ignore_range", [False, True])
def test_a_part_file_from_an_earlier_run(
    server: DemoServer, dest: Path, ignore_range: bool
) -> None:
    """With Range honoured only the rest is fetched; a server ignoring Range answers 200 with
    the whole body, and the download starts over instead of appending it to the part."""
    served = server.add("resume.bin", 3 * MiB // 2, ignore_range=ignore_range)
    url = server.url("resume.bin")
    sidecar = {"url": url, "etag": served.etag, "last_modified": None, "size": len(served.data)}
    write_part(dest, "resume.bin", served.data[:50_000], sidecar)

    result = only(download([url], dest))

    assert result.status == "done", result.error
    assert (dest / "resume.bin").read_bytes() == served.data  # no duplicated prefix
    assert os.listdir(dest) == ["resume.bin"]
    assert served.requests == 1
    if ignore_range:
        assert served.range_requests == 0
        assert result.resumed_from == 0
        assert result.bytes == len(served.data)
    else:
        assert served.range_requests == 1
        assert result.resumed_from == 50_000
        assert result.bytes == len(served.data) - 50_000


def test_a_changed_file_is_downloaded_again_in_full(server: DemoServer, dest: Path) -> None:
    """The sidecar's ETag is stale: If-Range makes the server send the new file whole."""
    served = server.add("changed.bin", 3 * MiB // 2)
    url = server.url("changed.bin")
    old = bytes(reversed(served.data))[:60_000]  # the old version's first bytes
    sidecar = {"url": url, "etag": '"old-version"', "last_modified": None, "size": 2 * MiB}
    write_part(dest, "changed.bin", old, sidecar)

    result = only(download([url], dest))

    assert result.status == "done", result.error
    assert served.range_requests == 0
    assert result.resumed_from == 0
    assert (dest / "changed.bin").read_bytes() == served.data
    assert os.listdir(dest) == ["changed.bin"]


def test_resume_can_be_turned_off(server: DemoServer, dest: Path) -> None:
    served = server.add("fresh.bin", 3 * MiB // 2)
    url = server.url("fresh.bin")
    sidecar = {"url": url, "etag": served.etag, "last_modified": None, "size": len(served.data)}
    write_part(dest, "fresh.bin", served.data[:10_000], sidecar)

    result = only(download([url], dest, resume=False))

    assert result.status == "done", result.error
    assert served.range_requests == 0
    assert result.resumed_from == 0
    assert sha256_of(dest / "fresh.bin") == served.sha256


# -- names -------------------------------------------------------------------------------------

HOSTILE_DISPOSITIONS = [
    'attachment; filename="../../evil"',
    'attachment; filename="/etc/passwd"',
    'attachment; filename="..\\\\x"',  # the header carries `..\\x`: `..\x` once unquoted
    "attachment; filename=..\\x",
    'attachment; filename=""',
    "attachment; filename=",
    'attachment; filename="a\x00b.txt"',
    'attachment; filename="C:evil"',
    'attachment; filename="C:\\\\Windows\\\\evil.dll"',
    'attachment; filename=".."',
    'attachment; filename="."',
    'attachment; filename="\x1b[31mred\x07.txt"',
    "attachment; filename*=UTF-8''..%2F..%2Fstar-evil",
    "attachment; filename*=UTF-8''%2Fetc%2Fshadow",
    'attachment; filename="' + "long" * 200 + '.txt"',
    'attachment; filename="' + "\u00e9" * 300 + '"',
]


def test_hostile_content_disposition_names_stay_inside_dest(
    server: DemoServer, dest: Path, tmp_path: Path
) -> None:
    served = {}
    for i, header in enumerate(HOSTILE_DISPOSITIONS):
        served[f"d{i}"] = server.add(f"d{i}", 1000 + i, content_disposition=header)
    report = download([server.url(name) for name in served], dest)

    assert report.ok, str(report)
    root = os.path.realpath(dest)
    found: list[str] = []
    for folder, dirs, files in os.walk(tmp_path):
        for name in files + dirs:
            path = os.path.realpath(os.path.join(folder, name))
            if path in (os.path.realpath(dest.parent), root):
                continue
            assert os.path.dirname(path) == root, f"{path} is outside {root}"
            found.append(path)
    assert sorted(os.listdir(tmp_path)) == ["outer"]
    assert os.listdir(dest.parent) == ["dest"]
    assert all(os.path.isfile(path) for path in found)
    assert len(found) == len(served)  # one file each: none overwrote another
    for result, (_, original) in zip(report.files, served.items(), strict=True):
        assert result.path is not None
        assert os.path.dirname(os.path.realpath(result.path)) == root
        name = os.path.basename(result.path)
        assert name not in ("", ".", "..")
        assert not any(c in name for c in "/\\\x00")
        assert name.isprintable()
        assert len(name.encode("utf-8")) <= 255
        assert sha256_of(result.path) == original.sha256


def test_a_safe_content_disposition_name_is_used(server: DemoServer, dest: Path) -> None:
    served = server.add("download?id=7", 500, content_disposition='attachment; filename="r.pdf"')
    result = only(download([server.url("download") + "%3Fid%3D7"], dest))

    assert result.status == "done", result.error
    assert result.path == os.path.join(dest, "r.pdf")
    assert sha256_of(dest / "r.pdf") == served.sha256
    assert final_files(dest) == ["r.pdf"]


def test_same_name_from_different_urls_does_not_overwrite(server: DemoServer, dest: Path) -> None:
    served = [
        server.add("a/data.bin", 3000),
        server.add("b/data.bin", 4000),
        server.add("c/DATA.BIN", 5000),  # differs only in case: one file on many systems
        server.add("x1", 600, content_disposition='attachment; filename="report.txt"'),
        server.add("x2", 700, content_disposition='attachment; filename="report.txt"'),
    ]
    urls = [server.url(p) for p in ("a/data.bin", "b/data.bin", "c/DATA.BIN", "x1", "x2")]
    report = download(urls, dest)

    assert report.ok, str(report)
    paths = [r.path for r in report.files]
    assert len({str(p).lower() for p in paths}) == 5
    for result, original in zip(report.files, served, strict=True):
        assert result.path is not None
        assert sha256_of(result.path) == original.sha256
    assert len(final_files(dest)) == 5


# -- checksums ---------------------------------------------------------------------------------


def test_checksum_match_by_url(server: DemoServer, dest: Path) -> None:
    served = server.add("ok.bin", 30 * KiB)
    url = server.url("ok.bin")
    result = only(download([url], dest, checksums={url: "sha256:" + served.sha256}))

    assert result.status == "done", result.error
    assert sha256_of(dest / "ok.bin") == served.sha256


def test_checksum_mismatch_leaves_no_final_file(server: DemoServer, dest: Path) -> None:
    served = server.add("bad.bin", 30 * KiB)
    url = server.url("bad.bin")
    result = only(download([url], dest, checksums={url: "sha256:" + "0" * 64}, backoff=0.01))

    assert result.status == "failed"
    assert result.error is not None
    assert "mismatch" in result.error
    assert served.sha256 in result.error
    assert not (dest / "bad.bin").exists()
    assert final_files(dest) == []


def test_checksums_from_a_manifest_file(server: DemoServer, dest: Path, tmp_path: Path) -> None:
    good = server.add("good.bin", 20 * KiB)
    tampered = server.add("tampered.bin", 20 * KiB)
    server.add("unlisted.bin", 1 * KiB)
    manifest = tmp_path / "SHA256SUMS"
    manifest.write_text(
        "# sha256sum output\n"
        f"{good.sha256}  good.bin\n"
        f"{hashlib.sha256(b'something else').hexdigest()} *tampered.bin\n",
        encoding="utf-8",
    )
    names = ["good.bin", "tampered.bin", "unlisted.bin"]
    report = download([server.url(n) for n in names], dest, checksums=manifest)

    assert [f.status for f in report.files] == ["done", "failed", "done"]
    assert "mismatch" in str(report.files[1].error)
    assert final_files(dest) == ["good.bin", "unlisted.bin"]
    assert sha256_of(dest / "good.bin") == good.sha256
    assert tampered.requests == 1  # a mismatch is not retried: the server gave what it has


def test_checksums_from_a_manifest_path_string(
    server: DemoServer, dest: Path, tmp_path: Path
) -> None:
    served = server.add("s.bin", 2 * KiB)
    manifest = tmp_path / "sums.txt"
    manifest.write_text(f"{'f' * 64}  s.bin\n", encoding="utf-8")
    result = only(download([server.url("s.bin")], dest, checksums=str(manifest)))

    assert result.status == "failed"
    assert served.sha256 in str(result.error)


@pytest.mark.parametrize("with_checksums", [False, True])
def test_complete_files_are_skipped_on_a_second_run(
    server: DemoServer, dest: Path, with_checksums: bool
) -> None:
    served = {f"k{i}.bin": server.add(f"k{i}.bin", 40 * KiB + i) for i in range(5)}
    urls = [server.url(name) for name in served]
    checksums = {url: "sha256:" + s.sha256 for url, s in zip(urls, served.values(), strict=True)}
    first = download(urls, dest, checksums=checksums if with_checksums else None)
    assert first.count("done") == 5

    # The server counts a body once its write returns, which can be just after the client
    # has read it all: wait for the count of the first run to be complete.
    expected = sum(40 * KiB + i for i in range(5))
    deadline = time.monotonic() + 10.0  # never reached when all is well
    while server.stats.bytes_sent < expected and time.monotonic() < deadline:
        time.sleep(0.005)
    for s in served.values():
        s.requests = 0
    sent_before = server.stats.bytes_sent
    assert sent_before == expected
    second = download(urls, dest, checksums=checksums if with_checksums else None)

    assert [f.status for f in second.files] == ["skipped"] * 5
    assert second.total_bytes == 0
    assert server.stats.bytes_sent == sent_before  # no body sent again
    for s in served.values():
        assert s.requests <= (0 if with_checksums else 1)
    for name, s in served.items():
        assert sha256_of(dest / name) == s.sha256


def test_an_existing_file_with_other_content_is_replaced(server: DemoServer, dest: Path) -> None:
    served = server.add("stale.bin", 10 * KiB)
    dest.mkdir(parents=True)
    (dest / "stale.bin").write_bytes(b"an old version")
    url = server.url("stale.bin")
    result = only(download([url], dest, checksums={url: served.sha256}))

    assert result.status == "done", result.error
    assert sha256_of(dest / "stale.bin") == served.sha256


# -- protocol violations -------------------------------------------------------------------------


@pytest.mark.parametrize("late", [False, True], ids=["same-write", "late-before-close"])
def test_a_body_longer_than_content_length_fails(
    scripted: Callable[[Respond], Scripted], dest: Path, late: bool
) -> None:
    """The response announces 64 KiB and closes the connection after it, but sends 500 more
    bytes first: in the same write, or a moment later (before closing)."""
    body = os.urandom(64 * KiB)

    def respond(handler: http.server.BaseHTTPRequestHandler, n: int) -> None:
        head = (
            f"HTTP/1.0 200 OK\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode("ascii")
        if late:
            handler.wfile.write(head + body)
            time.sleep(0.05)
            handler.wfile.write(b"x" * 500)
        else:
            handler.wfile.write(head + body + b"x" * 500)

    record = scripted(respond)
    result = only(download([record.base_url + "/long.bin"], dest, backoff=0.01))

    assert result.status == "failed", "a body longer than its Content-Length was accepted"
    assert result.error is not None
    assert "Content-Length" in result.error
    assert final_files(dest) == []


def test_a_redirect_is_followed(server: DemoServer, dest: Path) -> None:
    served = server.add("target.bin", 5 * KiB)
    server.add("moved.bin", redirect_to=server.url("target.bin"))
    result = only(download([server.url("moved.bin")], dest))

    assert result.status == "done", result.error
    assert sha256_of(result.path or "") == served.sha256


@pytest.mark.parametrize("length", [1, 2, 3])
def test_a_redirect_loop_fails(server: DemoServer, dest: Path, length: int) -> None:
    names = [f"loop{i}" for i in range(length)]
    for i, name in enumerate(names):
        server.add(name, redirect_to=server.url(names[(i + 1) % length]))
    result = only(download([server.url("loop0")], dest, backoff=0.01))

    assert result.status == "failed"
    assert result.error is not None
    assert "redirect loop" in result.error
    assert result.attempts == 1
    assert sum(server.files["/" + n].requests for n in names) == length
    assert os.listdir(dest) == []


def test_a_redirect_to_ftp_fails(server: DemoServer, dest: Path) -> None:
    server.add("to-ftp", redirect_to="ftp://127.0.0.1/file.bin")
    result = only(download([server.url("to-ftp")], dest, backoff=0.01))

    assert result.status == "failed"
    assert result.error is not None
    assert "ftp://127.0.0.1/file.bin" in result.error
    assert "non-http" in result.error
    assert result.attempts == 1
    assert os.listdir(dest) == []


def test_a_non_http_url_fails(dest: Path) -> None:
    result = only(download(["ftp://127.0.0.1/file.bin"], dest, backoff=0.01))

    assert result.status == "failed"
    assert result.error is not None
    assert "'ftp'" in result.error


# -- large files ---------------------------------------------------------------------------------


def test_a_large_file_is_downloaded_in_segments(server: DemoServer, dest: Path) -> None:
    served = server.add("big.bin", 40 * MiB)
    url = server.url("big.bin")
    report = download([url], dest, workers=8, checksums={url: "sha256:" + served.sha256})
    result = only(report)

    assert result.status == "done", result.error
    assert result.segments > 1
    assert served.range_requests >= result.segments - 1
    assert result.bytes == result.size == 40 * MiB
    assert sha256_of(dest / "big.bin") == served.sha256
    assert os.listdir(dest) == ["big.bin"]


def test_large_files_at_once_share_the_connections_evenly(server: DemoServer, dest: Path) -> None:
    # Default workers (16) and split (8): each file may have 8 segments, but three at once
    # cannot. Taking whatever was free gave 8, 7 and 1 segments: the third file then ran alone
    # on one connection long after the others had finished.
    served = [server.add(f"big{i}.bin", 8 * MiB) for i in range(3)]
    report = download([server.url(f"big{i}.bin") for i in range(3)], dest, min_split_size=MiB)

    assert report.ok, report
    segments = [f.segments for f in report.files]
    assert max(segments) - min(segments) <= 1, segments
    assert min(segments) > 1, segments
    assert sum(segments) <= 16, segments
    for i, s in enumerate(served):
        assert sha256_of(dest / f"big{i}.bin") == s.sha256


def test_segments_can_be_turned_off(server: DemoServer, dest: Path) -> None:
    served = server.add("big.bin", 20 * MiB)
    result = only(download([server.url("big.bin")], dest, workers=8, segments=False))

    assert result.status == "done", result.error
    assert result.segments == 1
    assert served.requests == 1
    assert sha256_of(dest / "big.bin") == served.sha256


# -- progress and the report ---------------------------------------------------------------------


def test_progress_callback_sees_bytes_grow(dest: Path) -> None:
    seen: list[int] = []
    with DemoServer(bandwidth=2 * MiB) as throttled:
        names = [f"p{i}.bin" for i in range(3)]
        for name in names:
            throttled.add(name, 600 * KiB)
        report = download(
            [throttled.url(n) for n in names], dest, progress=lambda r: seen.append(r.total_bytes)
        )

    assert report.ok, str(report)
    assert len(seen) >= 2
    assert seen == sorted(seen)  # never goes backwards
    assert seen[0] < seen[-1] == report.total_bytes == 3 * 600 * KiB


def test_report_round_trips_through_json(server: DemoServer, dest: Path) -> None:
    server.add("a.bin", 1000)
    server.add("gone.bin", 10, status=404)
    report = download([server.url("a.bin"), server.url("gone.bin")], dest)
    data = report.to_json()

    assert json.loads(json.dumps(data)) == data
    assert data["ok"] is False
    assert data["total_bytes"] == 1000
    assert [f["status"] for f in data["files"]] == ["done", "failed"]
    assert data["files"][1]["error"] == report.files[1].error
    assert "1 done, 1 failed" in report.summary()
    assert "gone.bin" in str(report)


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "argument"),
    [
        ({"workers": 0}, ValueError, "workers"),
        ({"workers": "4"}, TypeError, "workers"),
        ({"per_host": 0}, ValueError, "per_host"),
        ({"retries": -1}, ValueError, "retries"),
        ({"timeout": -1}, ValueError, "timeout"),
        ({"backoff": "fast"}, TypeError, "backoff"),
        ({"checksums": 42}, TypeError, "checksums"),
        ({"checksums": {"http://x/a": "md99:00"}}, ValueError, "checksums"),
        ({"checksums": {"http://x/a": "sha256:not-hex"}}, ValueError, "checksums"),
        ({"progress": "loudly"}, TypeError, "progress"),
        ({"urls": ["http://127.0.0.1:1/a", 42]}, TypeError, "urls"),
        ({"urls": [b"http://127.0.0.1:1/a"]}, TypeError, "urls"),
    ],
)
def test_bad_arguments_are_rejected(
    dest: Path, kwargs: dict[str, object], error: type[Exception], argument: str
) -> None:
    urls = kwargs.pop("urls", ["http://127.0.0.1:1/a"])
    with pytest.raises(error, match=argument):
        download(urls, dest, **kwargs)  # type: ignore[arg-type]
