"""The downloader's options, each against a local server: headers and User-Agent, cookies,
basic auth and .netrc, proxies (through a local forwarding proxy), bandwidth limits, split
control, timestamping and mtimes, the lowest speed, retry waits, dry runs, TLS, compressed
transfers, per-URL requests, duplicate URLs and the log."""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.cookiejar
import io
import os
import shutil
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from forward_proxy import ForwardProxy
from hostile_server import HostileServer

from threadwise.download import (
    DownloadReport,
    FileResult,
    InsecureWarning,
    Request,
    download,
)

KiB = 1024
MiB = 1024 * KiB


def only(report: DownloadReport) -> FileResult:
    assert len(report.files) == 1
    return report.files[0]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# -- headers ---------------------------------------------------------------------------------


def test_user_agent_and_headers(hostile: HostileServer, tmp_path: Path) -> None:
    served = hostile.add("a.bin", 10)
    download(
        [hostile.url("a.bin")],
        tmp_path,
        user_agent="Wget/1.21",
        headers={"Accept-Language": "fr", "X-One": "1"},
    )
    sent = served.request_headers[0]
    assert sent["User-Agent"] == "Wget/1.21"
    assert sent["Accept-Language"] == "fr"
    assert sent["X-One"] == "1"
    assert sent["Accept-Encoding"] == "identity"


def test_a_header_named_like_a_default_replaces_it(hostile: HostileServer, tmp_path: Path) -> None:
    served = hostile.add("a.bin", 10)
    download([hostile.url("a.bin")], tmp_path, headers={"user-agent": "mine"})
    sent = {k.lower(): v for k, v in served.request_headers[0].items()}
    assert sent["user-agent"] == "mine"


def test_per_url_headers_name_dir_and_checksum(hostile: HostileServer, tmp_path: Path) -> None:
    a = hostile.add("a.bin", 1000)
    b = hostile.add("b.bin", 1000)
    report = download(
        [
            Request(hostile.url("a.bin"), name="first.dat", dir="sub", headers={"X-Per": "a"}),
            Request(hostile.url("b.bin"), checksum="sha-256=" + "0" * 64),
        ],
        tmp_path,
        headers={"X-All": "yes"},
    )
    first, second = report.files
    assert first.status == "done"
    assert first.path == os.path.join(tmp_path, "sub", "first.dat")
    assert (tmp_path / "sub" / "first.dat").read_bytes() == a.data
    assert a.request_headers[0]["X-Per"] == "a"
    assert a.request_headers[0]["X-All"] == "yes"
    assert "X-Per" not in b.request_headers[0]
    assert second.status == "failed"
    assert second.error is not None
    assert second.error.startswith("sha256 mismatch")


def test_a_request_name_is_a_plain_file_name() -> None:
    with pytest.raises(ValueError, match=r"Request\.name"):
        Request("http://x/a", name="../a")
    with pytest.raises(ValueError, match="checksum"):
        Request("http://x/a", checksum="md7:00")
    with pytest.raises(TypeError, match=r"Request\.url"):
        Request(42)  # type: ignore[arg-type]


def test_duplicate_urls_are_downloaded_once(hostile: HostileServer, tmp_path: Path) -> None:
    served = hostile.add("a.bin", 1000)
    url = hostile.url("a.bin")
    report = download([url, url, Request(url), Request(url, name="copy.bin")], tmp_path)
    assert [f.path for f in report.files] == [
        os.path.join(tmp_path, "a.bin"),
        os.path.join(tmp_path, "copy.bin"),
    ]
    assert served.requests == 2
    assert report.warnings == ["2 duplicate URLs collapsed (each is downloaded once)"]


# -- cookies and credentials ----------------------------------------------------------------------


def test_cookies_from_a_netscape_file(hostile: HostileServer, tmp_path: Path) -> None:
    served = hostile.add("a.bin", 10)
    jar = tmp_path / "cookies.txt"
    jar.write_text(
        "# Netscape HTTP Cookie File\n"
        "127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\tabc123\n"
        "127.0.0.1\tFALSE\t/elsewhere\tFALSE\t0\tother\tno\n"
        ".example.com\tTRUE\t/\tFALSE\t0\tforeign\tno\n",
        encoding="utf-8",
    )
    download([hostile.url("a.bin")], tmp_path / "out", cookies=str(jar))
    assert served.request_headers[0]["Cookie"] == "session=abc123"


def test_cookies_from_a_cookie_jar(hostile: HostileServer, tmp_path: Path) -> None:
    served = hostile.add("a.bin", 10)
    jar = http.cookiejar.CookieJar()
    cookie = http.cookiejar.Cookie(
        0, "token", "t1", None, False, "127.0.0.1", False, False, "/", True, False,
        None, True, None, None, {},
    )  # fmt: skip
    jar.set_cookie(cookie)
    download([hostile.url("a.bin")], tmp_path, cookies=jar)
    assert served.request_headers[0]["Cookie"] == "token=t1"


def test_a_bad_cookie_file_is_a_value_error(tmp_path: Path) -> None:
    bad = tmp_path / "cookies.txt"
    bad.write_text("not a cookie file\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not a Netscape cookie file line"):
        download([], tmp_path, cookies=str(bad))
    with pytest.raises(TypeError, match="cookies"):
        download([], tmp_path, cookies=42)  # type: ignore[arg-type]


def test_basic_auth_and_url_credentials(hostile: HostileServer, tmp_path: Path) -> None:
    a = hostile.add("a.bin", 10)
    b = hostile.add("b.bin", 10)
    download([hostile.url("a.bin")], tmp_path, auth=("ann", "s3cret"))
    assert a.request_headers[0]["Authorization"] == basic("ann", "s3cret")
    url = hostile.url("b.bin").replace("http://", "http://bob:pa%3Ass@")
    result = only(download([url], tmp_path))
    assert result.status == "done"
    assert b.request_headers[0]["Authorization"] == basic("bob", "pa:ss")


def test_auth_is_not_sent_to_another_host_after_a_redirect(tmp_path: Path) -> None:
    with HostileServer() as first, HostileServer() as second:
        target = second.add("a.bin", 10)
        first.add("go", redirect_to=second.url("a.bin").replace("127.0.0.1", "localhost"))
        result = only(download([first.url("go")], tmp_path, auth=("ann", "pw")))
    assert result.status == "done"
    assert "Authorization" not in target.request_headers[0]


def test_netrc(hostile: HostileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served = hostile.add("a.bin", 10)
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login carl password pw1\n", encoding="utf-8")
    netrc.chmod(0o600)
    download([hostile.url("a.bin")], tmp_path / "o1", netrc=str(netrc))
    assert served.request_headers[0]["Authorization"] == basic("carl", "pw1")
    monkeypatch.setenv("NETRC", str(netrc))
    download([hostile.url("a.bin")], tmp_path / "o2", netrc=True)
    assert served.request_headers[1]["Authorization"] == basic("carl", "pw1")
    download([hostile.url("a.bin")], tmp_path / "o3")  # netrc is off by default
    assert "Authorization" not in served.request_headers[2]
    with pytest.raises(ValueError, match="netrc"):
        download([hostile.url("a.bin")], tmp_path / "o4", netrc=str(tmp_path / "missing"))


# -- proxies ---------------------------------------------------------------------------------


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.mark.usefixtures("no_proxy_env")
def test_the_environment_proxy_is_used(
    hostile: HostileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = hostile.add("a.bin", 5000)
    with ForwardProxy() as proxy:
        monkeypatch.setenv("http_proxy", proxy.url)
        result = only(download([hostile.url("a.bin")], tmp_path))
        seen = proxy.seen
    assert result.status == "done", result.error
    assert (tmp_path / "a.bin").read_bytes() == served.data
    assert [(m, p) for m, p, _ in seen] == [("GET", hostile.url("a.bin"))]
    assert seen[0][2]["User-Agent"].startswith("threadwise/")


@pytest.mark.usefixtures("no_proxy_env")
def test_no_proxy_and_proxy_false_go_direct(
    hostile: HostileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hostile.add("a.bin", 100)
    with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        assert only(download([hostile.url("a.bin")], tmp_path / "1")).status == "done"
        monkeypatch.delenv("NO_PROXY")
        assert only(download([hostile.url("a.bin")], tmp_path / "2", proxy=False)).status == "done"
        assert (
            only(download([hostile.url("a.bin")], tmp_path / "3", no_proxy=".0.0.1")).status
            == "done"
        )
        assert proxy.seen == []


@pytest.mark.usefixtures("no_proxy_env")
def test_an_explicit_proxy_with_credentials(hostile: HostileServer, tmp_path: Path) -> None:
    hostile.add("a.bin", 100)
    with ForwardProxy() as proxy:
        with_user = proxy.url.replace("http://", "http://pu:pp@")
        assert only(download([hostile.url("a.bin")], tmp_path, proxy=with_user)).status == "done"
        seen = proxy.seen
    assert len(seen) == 1
    assert seen[0][2]["Proxy-Authorization"] == basic("pu", "pp")


@pytest.mark.usefixtures("no_proxy_env")
def test_a_proxy_that_refuses_fails_the_file(hostile: HostileServer, tmp_path: Path) -> None:
    hostile.add("a.bin", 100)
    dead = hostile.refused_url().rsplit("/", 1)[0]
    result = only(download([hostile.url("a.bin")], tmp_path, proxy=dead, retries=1))
    assert result.status == "failed"
    assert not (tmp_path / "a.bin").exists()


# -- speed: limits, split, lowest speed, retry wait ---------------------------------------------


def test_limit_rate_for_the_batch(hostile: HostileServer, tmp_path: Path) -> None:
    for name in ("a.bin", "b.bin"):
        hostile.add(name, 100 * KiB)
    started = time.monotonic()
    report = download([hostile.url("a.bin"), hostile.url("b.bin")], tmp_path, limit_rate=200 * KiB)
    elapsed = time.monotonic() - started
    assert report.ok
    assert elapsed >= 0.8  # 200 KiB at 200 KiB/s, less one burst of a tenth of a second


def test_limit_rate_per_file(hostile: HostileServer, tmp_path: Path) -> None:
    hostile.add("a.bin", 100 * KiB)
    started = time.monotonic()
    result = only(download([hostile.url("a.bin")], tmp_path, limit_rate_per_file=100 * KiB))
    assert result.status == "done"
    assert time.monotonic() - started >= 0.8


def test_bad_rates_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="limit_rate"):
        download([], tmp_path, limit_rate=0)
    with pytest.raises(TypeError, match="lowest_speed_limit"):
        download([], tmp_path, lowest_speed_limit="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_split_size"):
        download([], tmp_path, min_split_size=0)
    with pytest.raises(ValueError, match="split"):
        download([], tmp_path, split=0)


def test_split_and_min_split_size(hostile: HostileServer, tmp_path: Path) -> None:
    served = hostile.add("big.bin", 4 * MiB)
    url = hostile.url("big.bin")
    result = only(download([url], tmp_path / "a", split=4, min_split_size=MiB))
    assert result.segments == 4
    assert served.range_requests == 3
    assert (tmp_path / "a" / "big.bin").read_bytes() == served.data
    result = only(download([url], tmp_path / "b", split=4, min_split_size=2 * MiB))
    assert result.segments == 2
    result = only(download([url], tmp_path / "c", split=1, min_split_size=MiB))
    assert result.segments == 1


def test_lowest_speed_limit_abandons_a_slow_transfer(
    hostile: HostileServer, tmp_path: Path
) -> None:
    hostile.drip("slow.bin", 100 * KiB, rate=2000)
    started = time.monotonic()
    result = only(
        download(
            [hostile.url("slow.bin")],
            tmp_path,
            lowest_speed_limit=50 * KiB,
            lowest_speed_time=0.5,
            retries=0,
        )
    )
    assert time.monotonic() - started < 10
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.startswith("slower than 51200 B/s")


def test_retry_wait_is_a_fixed_pause(hostile: HostileServer, tmp_path: Path) -> None:
    hostile.add("a.bin", 100, fail_times=2)
    started = time.monotonic()
    result = only(download([hostile.url("a.bin")], tmp_path, retry_wait=0.3, backoff=30))
    elapsed = time.monotonic() - started
    assert result.status == "done"
    assert result.attempts == 3
    assert 0.55 <= elapsed < 10


# -- timestamps ---------------------------------------------------------------------------------


def test_mtime_comes_from_last_modified(hostile: HostileServer, tmp_path: Path) -> None:
    served = hostile.add("a.bin", 100)
    download([hostile.url("a.bin")], tmp_path / "a")
    assert os.stat(tmp_path / "a" / "a.bin").st_mtime == served.last_modified
    download([hostile.url("a.bin")], tmp_path / "b", remote_time=False)
    assert abs(os.stat(tmp_path / "b" / "a.bin").st_mtime - time.time()) < 60


def test_timestamping_asks_if_modified_since(hostile: HostileServer, tmp_path: Path) -> None:
    served = hostile.changing("a.bin", 1000)
    url = hostile.url("a.bin")
    assert only(download([url], tmp_path, timestamping=True)).status == "done"
    assert only(download([url], tmp_path, timestamping=True)).status == "skipped"
    assert served.request_headers[-1]["If-Modified-Since"] == served.http_date
    served.change()
    assert only(download([url], tmp_path, timestamping=True)).status == "done"
    assert (tmp_path / "a.bin").read_bytes() == served.data


# -- dry run ----------------------------------------------------------------------------------


def test_dry_run_writes_nothing(hostile: HostileServer, tmp_path: Path) -> None:
    hostile.add("a.bin", 1234)
    dest = tmp_path / "never"
    report = download([hostile.url("a.bin"), hostile.url("missing.bin")], dest, dry_run=True)
    ok, missing = report.files
    assert (ok.status, ok.size, ok.bytes) == ("done", 1234, 0)
    assert (missing.status, missing.error) == ("failed", "HTTP 404 Not Found")
    assert not dest.exists()
    assert hostile.files["/a.bin"].request_headers  # it did ask


def test_dry_run_retries_and_refuses(hostile: HostileServer, tmp_path: Path) -> None:
    hostile.add("a.bin", 10, fail_times=1)
    report = download(
        [hostile.url("a.bin"), hostile.refused_url()], tmp_path, dry_run=True, backoff=0
    )
    assert [f.status for f in report.files] == ["done", "failed"]
    assert report.files[0].attempts == 2


# -- TLS ----------------------------------------------------------------------------------------


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_verify_ca_certificate_and_no_check(
    hostile: HostileServer, tmp_path: Path, tls: tuple[Path, Path]
) -> None:
    cert, key = tls
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd = hostile._httpd
    assert httpd is not None
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    served = hostile.add("a.bin", 1000)
    url = hostile.url("a.bin").replace("http://", "https://")

    refused = only(download([url], tmp_path / "a", retries=0))
    assert refused.status == "failed"
    assert refused.error is not None
    assert "CERTIFICATE_VERIFY_FAILED" in refused.error

    trusted = only(download([url], tmp_path / "b", ca_certificate=cert))
    assert trusted.status == "done", trusted.error
    assert (tmp_path / "b" / "a.bin").read_bytes() == served.data

    with pytest.warns(InsecureWarning, match="TLS certificate checks are OFF"):
        report = download([url], tmp_path / "c", verify=False)
    assert report.ok
    assert report.warnings[0].startswith("TLS certificate checks are OFF")


# -- compressed ---------------------------------------------------------------------------------


def test_compressed_transfer_saves_the_decoded_file(hostile: HostileServer, tmp_path: Path) -> None:
    data = b"threadwise " * 20_000
    served = hostile.add("text.txt", data=data, gzip=True)
    result = only(download([hostile.url("text.txt")], tmp_path, compressed=True))
    assert result.status == "done", result.error
    assert served.request_headers[0]["Accept-Encoding"].startswith("gzip, deflate")
    assert (tmp_path / "text.txt").read_bytes() == data
    assert result.size == len(data)
    assert result.bytes == len(data)  # counted decoded
    assert len(gzip.compress(data)) < len(data) // 10
    plain = only(download([hostile.url("text.txt")], tmp_path / "plain"))
    assert served.request_headers[1]["Accept-Encoding"] == "identity"
    assert plain.status == "done"
    assert (tmp_path / "plain" / "text.txt").read_bytes() == data


def test_compressed_with_a_checksum(hostile: HostileServer, tmp_path: Path) -> None:
    data = b"abc" * 10_000
    hostile.add("t.txt", data=data, gzip=True)
    digest = hashlib.sha256(data).hexdigest()
    result = only(
        download([hostile.url("t.txt")], tmp_path, compressed=True, checksums={"t.txt": digest})
    )
    assert result.status == "done", result.error


# -- the log ------------------------------------------------------------------------------------


def test_log_and_verbose(hostile: HostileServer, tmp_path: Path) -> None:
    hostile.add("a.bin", 100, fail_times=1)
    lines: list[str] = []
    download([hostile.url("a.bin")], tmp_path / "a", log=lines.append, backoff=0)
    assert len(lines) == 1
    assert lines[0].startswith(f"{hostile.url('a.bin')}: retry 1 of 5 in 0.0 s: HTTP 500")
    stream = io.StringIO()
    download([hostile.url("a.bin")], tmp_path / "b", log=stream, verbose=True)
    text = stream.getvalue()
    assert f"GET {hostile.url('a.bin')}\n" in text
    assert f"HTTP 200 OK from {hostile.url('a.bin')}\n" in text
    with pytest.raises(TypeError, match="log"):
        download([], tmp_path, log=42)  # type: ignore[arg-type]
