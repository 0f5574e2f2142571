"""``threadwise get``'s options, each end to end through the command line against servers on
127.0.0.1: the hostile test server (which records every request's headers), a forwarding proxy,
and the same server speaking TLS with a certificate made for the test."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from forward_proxy import ForwardProxy
from hostile_server import HostileServer

from threadwise.cli import main
from threadwise.download import DemoServer

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def _no_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every test here talks to 127.0.0.1: a proxy set where the suite runs must not interfere.
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.delenv("NETRC", raising=False)


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy() as server:
        yield server


def _headers(server: DemoServer, name: str) -> list[dict[str, str]]:
    """The headers of every request the server had for ``name``."""
    return server.files["/" + name].request_headers


def _get(*argv: str) -> int:
    return main(["get", *argv])


def _serve(server: DemoServer, names: list[str], size: int) -> list[str]:
    for name in names:
        server.add(name, size)
    return [server.url(name) for name in names]


def _json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


# -- output names -------------------------------------------------------------------------------
def test_dash_capital_o_names_each_url_in_order(hostile: HostileServer, tmp_path: Path) -> None:
    hostile.add("a", data=b"first")
    hostile.add("b", data=b"second")
    hostile.add("c", data=b"third")
    code = _get(
        "-O", "one.txt", hostile.url("a"),
        "-O", "sub/two.txt", hostile.url("b"),
        hostile.url("c"),
        "-o", str(tmp_path), "-q",
    )  # fmt: skip
    assert code == 0
    assert (tmp_path / "one.txt").read_bytes() == b"first"
    assert (tmp_path / "sub" / "two.txt").read_bytes() == b"second"
    assert (tmp_path / "c").read_bytes() == b"third"  # no -O left for it: its own name


def test_more_dash_capital_o_than_urls_is_a_usage_error(
    hostile: HostileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile.add("a", data=b"x")
    assert _get("-O", "x", "-O", "y", hostile.url("a"), "-o", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "-O given 2 times for 1 URL on the command line" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "message"),
    [("-", "-O -: writing to standard output is not supported"), ("dir/", "-O dir/:")],
)
def test_bad_dash_capital_o_names_the_value(
    name: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _get("-O", name, "http://127.0.0.1:9/a") == 2
    assert message in capsys.readouterr().err


# -- input files with per-URL options ------------------------------------------------------------
def test_input_file_with_aria2_per_url_options(hostile: HostileServer, tmp_path: Path) -> None:
    hostile.add("a", data=b"alpha")
    hostile.add("b", data=b"bravo")
    hostile.add("c", data=b"charlie")
    digest = hashlib.sha256(b"bravo").hexdigest()
    listing = tmp_path / "urls.txt"
    listing.write_text(
        f"# a list in aria2's format\n"
        f"{hostile.url('a')}\n"
        f"  out=renamed.txt\n"
        f"\tdir=nested\n"
        f"  header=X-Token: secret 1\n"
        f"\n"
        f"{hostile.url('b')}\n"
        f"  checksum=sha-256={digest}\n"
        f"{hostile.url('c')}\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    assert _get("-i", str(listing), "-o", str(out), "-q") == 0
    assert (out / "nested" / "renamed.txt").read_bytes() == b"alpha"
    assert (out / "b").read_bytes() == b"bravo"
    assert (out / "c").read_bytes() == b"charlie"
    # The header went with its own URL only.
    assert [h.get("X-Token") for h in _headers(hostile, "a")] == ["secret 1"]
    assert all("X-Token" not in h for h in _headers(hostile, "c"))


def test_input_file_checksum_that_does_not_match_keeps_no_file(
    hostile: HostileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile.add("a", data=b"the real content")
    listing = tmp_path / "urls.txt"
    listing.write_text(f"{hostile.url('a')}\n  checksum=sha256:{'0' * 64}\n", encoding="utf-8")
    out = tmp_path / "out"
    assert _get("-i", str(listing), "-o", str(out)) == 1
    assert not (out / "a").exists()
    assert "mismatch" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("  out=x\nhttp://h/a\n", "{list}:1: option out= before any URL"),
        ("http://h/a\n  speed=9\n", "{list}:2: unknown option speed= (known: out, dir, "),
        ("http://h/a\n  out=x\n  out=y\n", "{list}:3: out= given twice for http://h/a"),
        ("http://h/a\n  header=nocolon\n", "{list}:2: header=nocolon: expected 'Name: value'"),
        ("http://h/a\thttp://mirror/a\n", "{list}:1: several URLs on one line"),
        ("http://h/a\n  out=\n", "{list}:2: out= needs a value"),
        ("http://h/a\n  out=../x\n", "{list}:1: http://h/a: Request.name must be a plain"),
        ("http://h/a\n  checksum=nonsense\n", "{list}:1: http://h/a:"),
    ],
)
def test_input_file_errors_name_the_file_and_line(
    text: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listing = tmp_path / "urls.txt"
    listing.write_text(text, encoding="utf-8")
    assert _get("-i", str(listing), "-o", str(tmp_path / "out")) == 2
    assert f"error: -i {message.format(list=listing)}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# -- HTTP: headers, user agent, cookies, authentication -------------------------------------------
def test_header_and_user_agent_go_with_every_request(
    hostile: HostileServer, tmp_path: Path
) -> None:
    hostile.add("a", data=b"a")
    hostile.add("b", data=b"b")
    code = _get(
        hostile.url("a"), hostile.url("b"),
        "--header", "X-One: 1", "-H", "Accept-Language:  fr ",
        "-U", "fetcher/2.0", "-o", str(tmp_path), "-q",
    )  # fmt: skip
    assert code == 0
    for path in ("a", "b"):
        (seen,) = _headers(hostile, path)
        assert seen["X-One"] == "1"
        assert seen["Accept-Language"] == "fr"
        assert seen["User-Agent"] == "fetcher/2.0"


def test_default_user_agent_is_threadwise(hostile: HostileServer, tmp_path: Path) -> None:
    hostile.add("a", data=b"a")
    assert _get(hostile.url("a"), "-o", str(tmp_path), "-q") == 0
    (seen,) = _headers(hostile, "a")
    assert seen["User-Agent"].startswith("threadwise/")


@pytest.mark.parametrize("bad", ["no colon", ": empty name", "Two Words: x"])
def test_bad_header_names_the_option_and_value(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _get("--header", bad, "http://127.0.0.1:9/a") == 2
    err = capsys.readouterr().err
    assert "--header" in err
    assert repr(bad) in err


def test_load_cookies_sends_the_cookies_that_apply(hostile: HostileServer, tmp_path: Path) -> None:
    hostile.add("private/a", data=b"a")
    hostile.add("public/b", data=b"b")
    cookies = tmp_path / "cookies.txt"
    cookies.write_text(
        "# Netscape HTTP Cookie File\n"
        "127.0.0.1\tFALSE\t/private\tFALSE\t0\tsession\tabc123\n"
        "127.0.0.1\tFALSE\t/\tFALSE\t0\tlang\ten\n"
        "other.example\tFALSE\t/\tFALSE\t0\tforeign\tno\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    code = _get(
        hostile.url("private/a"), hostile.url("public/b"),
        "--load-cookies", str(cookies), "-o", str(out), "-q",
    )  # fmt: skip
    assert code == 0
    (private,) = _headers(hostile, "private/a")
    (public,) = _headers(hostile, "public/b")
    assert sorted(private["Cookie"].split("; ")) == ["lang=en", "session=abc123"]
    assert public["Cookie"] == "lang=en"  # the /private cookie stays on its path


def test_bad_cookie_file_names_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("this is not a cookie file\n", encoding="utf-8")
    assert _get("--load-cookies", str(cookies), "http://127.0.0.1:9/a") == 2
    assert f"--load-cookies {cookies}:" in capsys.readouterr().err
    assert _get("--load-cookies", str(tmp_path / "missing.txt"), "http://127.0.0.1:9/a") == 2
    assert "No such file" in capsys.readouterr().err


_ALICE = "Basic YWxpY2U6czNjcmV0"  # alice:s3cret


@pytest.mark.parametrize(
    "argv",
    [["--user", "alice", "--password", "s3cret"], ["--user", "alice:s3cret"]],
)
def test_basic_auth(hostile: HostileServer, tmp_path: Path, argv: list[str]) -> None:
    hostile.add("secret", data=b"classified")
    assert _get(hostile.url("secret"), *argv, "-o", str(tmp_path), "-q") == 0
    assert [h.get("Authorization") for h in _headers(hostile, "secret")] == [_ALICE]


def test_no_credentials_without_auth_options(hostile: HostileServer, tmp_path: Path) -> None:
    hostile.add("open", data=b"public")
    assert _get(hostile.url("open"), "-o", str(tmp_path), "-q") == 0
    assert "Authorization" not in _headers(hostile, "open")[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--password", "x"], "--password needs --user"),
        (["--user", "alice"], "--user alice: no password"),
        (["--user", ":pw"], "--user ':pw': the user name is empty"),
    ],
)
def test_bad_auth_options(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _get(*argv, "http://127.0.0.1:9/a") == 2
    assert message in capsys.readouterr().err


def test_netrc_file_gives_the_credentials(hostile: HostileServer, tmp_path: Path) -> None:
    hostile.add("secret", data=b"classified")
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login alice password s3cret\n", encoding="utf-8")
    netrc.chmod(0o600)
    out = tmp_path / "out"
    assert _get(hostile.url("secret"), "--netrc-file", str(netrc), "-o", str(out), "-q") == 0
    assert [h.get("Authorization") for h in _headers(hostile, "secret")] == [_ALICE]


def test_netrc_reads_the_netrc_variable(
    hostile: HostileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hostile.add("secret", data=b"classified")
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login alice password s3cret\n", encoding="utf-8")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert _get(hostile.url("secret"), "-o", str(tmp_path / "1"), "-q") == 0
    assert _get(hostile.url("secret"), "--netrc", "-o", str(tmp_path / "2"), "-q") == 0
    # Only with --netrc (curl's choice: wget reads ~/.netrc unasked).
    assert [h.get("Authorization") for h in _headers(hostile, "secret")] == [None, _ALICE]


def test_bad_netrc_file_names_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine\n", encoding="utf-8")
    assert _get("--netrc-file", str(netrc), "http://127.0.0.1:9/a") == 2
    assert f"--netrc-file {netrc}:" in capsys.readouterr().err


# -- proxies ------------------------------------------------------------------------------------
def test_http_proxy_from_the_environment_is_used(
    hostile: HostileServer, proxy: ForwardProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hostile.add("a", data=b"through the proxy")
    monkeypatch.setenv("http_proxy", proxy.url)
    assert _get(hostile.url("a"), "-o", str(tmp_path), "-q") == 0
    assert (tmp_path / "a").read_bytes() == b"through the proxy"
    assert [path for _, path, _ in proxy.seen] == [
        hostile.url("a")
    ]  # absolute form: a proxy request


def test_no_proxy_ignores_the_environment(
    hostile: HostileServer, proxy: ForwardProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hostile.add("a", data=b"direct")
    monkeypatch.setenv("http_proxy", proxy.url)
    assert _get(hostile.url("a"), "--no-proxy", "-o", str(tmp_path), "-q") == 0
    assert (tmp_path / "a").read_bytes() == b"direct"
    assert proxy.seen == []
    assert len(_headers(hostile, "a")) == 1


def test_no_proxy_variable_is_honoured(
    hostile: HostileServer, proxy: ForwardProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hostile.add("a", data=b"direct")
    monkeypatch.setenv("http_proxy", proxy.url)
    monkeypatch.setenv("no_proxy", "localhost,127.0.0.1")
    assert _get(hostile.url("a"), "-o", str(tmp_path), "-q") == 0
    assert proxy.seen == []


def test_proxy_option_and_no_proxy_for(
    hostile: HostileServer, proxy: ForwardProxy, tmp_path: Path
) -> None:
    hostile.add("a", data=b"proxied")
    assert _get(hostile.url("a"), "--proxy", proxy.url, "-o", str(tmp_path / "1"), "-q") == 0
    assert len(proxy.seen) == 1
    code = _get(
        hostile.url("a"), "-x", proxy.url, "--no-proxy-for", "127.0.0.1",
        "-o", str(tmp_path / "2"), "-q",
    )  # fmt: skip
    assert code == 0
    assert len(proxy.seen) == 1  # the second run went direct
    assert (tmp_path / "2" / "a").read_bytes() == b"proxied"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--proxy", "http://p:1", "--no-proxy"], "--proxy http://p:1 and --no-proxy contradict"),
        (["--proxy", "p"], "--proxy p: expected a URL such as http://host:3128"),
    ],
)
def test_bad_proxy_options(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _get(*argv, "http://127.0.0.1:9/a") == 2
    assert message in capsys.readouterr().err


# -- rates, splitting, speed limits, retries -----------------------------------------------------
def test_limit_rate_holds_the_whole_batch_back(tmp_path: Path) -> None:
    with DemoServer() as server:
        urls = _serve(server, [f"f{i}" for i in range(4)], 64 * 1024)
        started = time.monotonic()
        code = _get(*urls, "--limit-rate", "128k", "-o", str(tmp_path), "-q")
        elapsed = time.monotonic() - started
    assert code == 0
    # 256 KiB at 128 KiB/s: about 2 s (a first burst allowed); unlimited it takes milliseconds.
    assert elapsed >= 1.2, elapsed


def test_limit_rate_per_file(tmp_path: Path) -> None:
    with DemoServer() as server:
        server.add("f", 96 * 1024)
        report = tmp_path / "report.json"
        code = _get(
            server.url("f"), "--limit-rate-per-file", "32K", "--json", str(report),
            "-o", str(tmp_path / "out"), "-q",
        )  # fmt: skip
    assert code == 0
    (row,) = _json(report)["files"]
    assert row["seconds"] >= 1.5  # 96 KiB at 32 KiB/s: about 3 s


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--limit-rate", "fast"),
        ("--limit-rate", "-1k"),
        ("--limit-rate-per-file", "1X"),
        ("--min-split-size", "0"),
        ("--lowest-speed-limit", "slow"),
        ("--split", "0"),
        ("-j", "0"),
        ("--per-host", "x"),
        ("--retry-wait", "-1"),
        ("--timeout", "0"),
        ("--retries", "-1"),
        ("--max-retry-after", "inf"),
        ("--lowest-speed-time", "0"),
    ],
)
def test_bad_numbers_and_sizes_name_the_option_and_value(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _get(f"{option}={value}", "http://127.0.0.1:9/a") == 2
    err = capsys.readouterr().err
    assert option in err
    assert repr(value) in err


def test_split_and_min_split_size(tmp_path: Path) -> None:
    with DemoServer() as server:
        served = server.add("big.bin", 4 << 20)
        report = tmp_path / "report.json"
        code = _get(
            server.url("big.bin"), "--split", "4", "--min-split-size", "1M",
            "--json", str(report), "-o", str(tmp_path / "out"), "-q",
        )  # fmt: skip
        assert code == 0
        assert _json(report)["files"][0]["segments"] == 4
        assert served.range_requests == 3  # the first segment is the first response's body
        digest = hashlib.sha256((tmp_path / "out" / "big.bin").read_bytes()).hexdigest()
        assert digest == served.sha256

        code = _get(
            server.url("big.bin"), "-s", "1", "--json", str(report),
            "-o", str(tmp_path / "one"), "-q",
        )  # fmt: skip
        assert code == 0
        assert _json(report)["files"][0]["segments"] == 1
        assert served.range_requests == 3  # no more ranges: one connection


def test_lowest_speed_limit_gives_up_on_a_crawl(tmp_path: Path) -> None:
    with DemoServer(bandwidth=4 * 1024) as server:
        server.add("slow.bin", 64 * 1024)  # 16 s at this rate
        report = tmp_path / "report.json"
        started = time.monotonic()
        code = _get(
            server.url("slow.bin"), "--lowest-speed-limit", "100k", "--lowest-speed-time", "1",
            "--retries", "0", "--json", str(report), "-o", str(tmp_path / "out"), "-q",
        )  # fmt: skip
        elapsed = time.monotonic() - started
    assert code == 1
    (row,) = _json(report)["files"]
    assert row["status"] == "failed"
    assert "speed" in row["error"] or "slow" in row["error"], row["error"]
    assert elapsed < 12, elapsed  # gave up, rather than crawling for 16 s


def test_retry_wait_waits_between_retries(tmp_path: Path) -> None:
    with DemoServer() as server:
        served = server.add("flaky", 100, fail_times=2, fail_status=503)
        report = tmp_path / "report.json"
        code = _get(
            server.url("flaky"), "--retry-wait", "0.6", "--json", str(report),
            "-o", str(tmp_path / "out"), "-q",
        )  # fmt: skip
    assert code == 0
    assert served.requests == 3
    (row,) = _json(report)["files"]
    assert row["attempts"] == 3
    assert row["seconds"] >= 1.2  # two waits of 0.6 s, not jittered below


def test_max_retry_after_fails_at_once_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with DemoServer() as server:
        server.add("busy", 100, fail_times=5, fail_status=429, retry_after="3600")
        started = time.monotonic()
        code = _get(server.url("busy"), "--max-retry-after", "5", "-o", str(tmp_path))
        elapsed = time.monotonic() - started
    assert code == 1
    assert elapsed < 10
    out = capsys.readouterr().out
    assert "3600" in out


def test_retry_after_wait_is_shown_as_waiting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Bug: a Retry-After wait showed only a silent "0 B" row; now the display says why.
    with DemoServer() as server:
        server.add("busy", 100, fail_times=1, fail_status=503, retry_after="2")
        assert _get(server.url("busy"), "-o", str(tmp_path)) == 0
    err = capsys.readouterr().err
    assert re.search(r"get: busy: waiting \d+ s: .*503.*Retry-After", err), err
    assert "[1/1] done" in err


def test_per_host_defaults_to_the_workers(tmp_path: Path) -> None:
    # Bug: -j 16 gave 8 connections to one host, --per-host's old default.
    with DemoServer(latency=0.5) as server:
        urls = _serve(server, [f"f{i:02d}" for i in range(16)], 1000)
        assert _get(*urls, "-j", "16", "-o", str(tmp_path), "-q") == 0
        assert server.stats.peak_concurrent > 8
        peak_default = server.stats.peak_concurrent
    with DemoServer(latency=0.5) as server:
        urls = _serve(server, [f"f{i:02d}" for i in range(8)], 1000)
        code = _get(*urls, "-j", "16", "--per-host", "2", "-o", str(tmp_path / "2"), "-q")
        assert code == 0
        assert server.stats.peak_concurrent <= 2 < peak_default


# -- timestamps ---------------------------------------------------------------------------------
def test_mtime_comes_from_last_modified(hostile: HostileServer, tmp_path: Path) -> None:
    stamp = 1_600_000_000.0
    hostile.add("a", data=b"old news", last_modified=stamp)  # sent as Last-Modified
    assert _get(hostile.url("a"), "-o", str(tmp_path / "1"), "-q") == 0
    assert (tmp_path / "1" / "a").stat().st_mtime == stamp
    assert (
        _get(hostile.url("a"), "--no-use-server-timestamps", "-o", str(tmp_path / "2"), "-q") == 0
    )
    assert abs((tmp_path / "2" / "a").stat().st_mtime - time.time()) < 600


def test_timestamping_downloads_only_newer_copies(hostile: HostileServer, tmp_path: Path) -> None:
    served = hostile.add("a", data=b"version 1")
    report = tmp_path / "report.json"
    argv = [hostile.url("a"), "-N", "-o", str(tmp_path / "out"), "--json", str(report), "-q"]
    assert _get(*argv) == 0
    assert (tmp_path / "out" / "a").read_bytes() == b"version 1"

    assert _get(*argv) == 0  # unchanged on the server: a conditional request, 304, skipped
    assert _json(report)["files"][0]["status"] == "skipped"
    assert "If-Modified-Since" in _headers(hostile, "a")[-1]

    served.change(b"version 2!")  # new bytes, a later Last-Modified
    assert _get(*argv) == 0
    assert _json(report)["files"][0]["status"] == "done"
    assert (tmp_path / "out" / "a").read_bytes() == b"version 2!"


# -- what is written, and what is said ------------------------------------------------------------
def test_duplicate_urls_are_downloaded_once(
    hostile: HostileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile.add("a", data=b"once")
    report = tmp_path / "report.json"
    url = hostile.url("a")
    assert _get(url, url, url, "-o", str(tmp_path / "out"), "--json", str(report)) == 0
    assert len(_json(report)["files"]) == 1
    assert len(_headers(hostile, "a")) == 1
    assert sorted(os.listdir(tmp_path / "out")) == ["a"]
    assert re.search(r"warning: .*duplicate", capsys.readouterr().err)


@pytest.mark.parametrize("option", ["--spider", "--dry-run"])
def test_dry_run_writes_nothing(
    option: str, hostile: HostileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile.add("here", data=b"x" * 5000)
    out = tmp_path / "out"
    code = _get(option, hostile.url("here"), hostile.url("missing"), "-o", str(out))
    assert code == 1  # one URL does not answer
    assert not out.exists() or list(out.iterdir()) == []
    stdout = capsys.readouterr().out
    assert re.search(r"^found\s+4\.9 KiB .* here$", stdout, re.MULTILINE), stdout
    assert re.search(r"^failed .* missing$", stdout, re.MULTILINE)
    assert "HTTP 404" in stdout
    assert "dry run: nothing was written" in stdout


def test_log_file_has_the_retries(tmp_path: Path) -> None:
    with DemoServer() as server:
        server.add("flaky", 100, fail_times=1, fail_status=503)
        log = tmp_path / "get.log"
        code = _get(
            server.url("flaky"), "--retry-wait", "0", "--log", str(log), "-o", str(tmp_path), "-q"
        )
    assert code == 0
    text = log.read_text(encoding="utf-8")
    assert "503" in text
    assert "GET " not in text  # request lines only with -v


def test_verbose_logs_requests_to_stderr_without_a_log_file(
    hostile: HostileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile.add("a", data=b"a")
    assert _get(hostile.url("a"), "-v", "-o", str(tmp_path)) == 0
    err = capsys.readouterr().err
    assert f"GET {hostile.url('a')}" in err
    assert "HTTP 200" in err


def test_verbose_with_a_log_file(hostile: HostileServer, tmp_path: Path) -> None:
    hostile.add("a", data=b"a")
    log = tmp_path / "get.log"
    assert _get(hostile.url("a"), "-v", "--log", str(log), "-o", str(tmp_path), "-q") == 0
    assert f"GET {hostile.url('a')}" in log.read_text(encoding="utf-8")


def test_log_file_that_cannot_be_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "no" / "such" / "dir" / "get.log"
    assert _get("--log", str(target), "http://127.0.0.1:9/a") == 2
    assert f"--log {target}: No such file or directory" in capsys.readouterr().err


def test_compressed(hostile: HostileServer, tmp_path: Path) -> None:
    text = b"threadwise " * 1000
    hostile.add("page.txt", data=text, gzip=True)
    assert _get(hostile.url("page.txt"), "--compressed", "-o", str(tmp_path / "z"), "-q") == 0
    assert (tmp_path / "z" / "page.txt").read_bytes() == text  # saved decoded
    assert "gzip" in _headers(hostile, "page.txt")[-1]["Accept-Encoding"]

    assert _get(hostile.url("page.txt"), "-o", str(tmp_path / "plain"), "-q") == 0
    assert (tmp_path / "plain" / "page.txt").read_bytes() == text
    assert "gzip" not in _headers(hostile, "page.txt")[-1].get("Accept-Encoding", "")


# -- TLS ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,digitalSignature",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def https(hostile: HostileServer, certificate: tuple[Path, Path]) -> HostileServer:
    """The hostile server, speaking TLS with a certificate made for 127.0.0.1."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    httpd = hostile._httpd
    assert httpd is not None
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    hostile.add("a", data=b"secure")
    return hostile


def _https(server: HostileServer, name: str) -> str:
    return server.url(name).replace("http://", "https://", 1)


def test_unknown_certificate_fails(
    https: HostileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _get(_https(https, "a"), "--retries", "0", "-o", str(tmp_path)) == 1
    assert "certificate" in capsys.readouterr().out.lower()
    assert not (tmp_path / "a").exists()


def test_ca_certificate(
    https: HostileServer, certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, _ = certificate
    assert _get(_https(https, "a"), "--ca-certificate", str(cert), "-o", str(tmp_path), "-q") == 0
    assert (tmp_path / "a").read_bytes() == b"secure"


def test_no_check_certificate_says_so_loudly(
    https: HostileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _get(_https(https, "a"), "--no-check-certificate", "-o", str(tmp_path), "-q") == 0
    assert (tmp_path / "a").read_bytes() == b"secure"
    err = capsys.readouterr().err
    assert "WARNING: --no-check-certificate: TLS certificates are NOT checked" in err


def test_missing_ca_certificate_names_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "ca.pem"
    assert _get("--ca-certificate", str(missing), "http://127.0.0.1:9/a") == 2
    assert f"--ca-certificate {missing}: no such file" in capsys.readouterr().err


# -- the help -----------------------------------------------------------------------------------
def test_help_groups_the_options_like_wget2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get", "--help"]) == 0
    out = capsys.readouterr().out
    groups = [
        "Startup:",
        "Logging and input file:",
        "Download:",
        "Directories:",
        "HTTP:",
        "HTTPS (TLS):",
    ]
    positions = [out.index("\n" + group) for group in groups]
    assert positions == sorted(positions)
    for option in (
        "--input-file", "--verbose", "--log", "--output-document", "--limit-rate",
        "--limit-rate-per-file", "--split", "--min-split-size", "--lowest-speed-limit",
        "--retry-wait", "--timestamping", "--no-use-server-timestamps", "--spider",
        "--dry-run", "--header", "--user-agent", "--load-cookies", "--user", "--password",
        "--netrc", "--netrc-file", "--proxy", "--no-proxy", "--compressed",
        "--ca-certificate", "--no-check-certificate",
    ):  # fmt: skip
        assert re.search(rf"{re.escape(option)}\b", out), option


def test_console_script_runs_get(hostile: HostileServer, tmp_path: Path) -> None:
    hostile.add("a", data=b"from the script")
    proc = subprocess.run(
        [sys.executable, "-m", "threadwise", "get", hostile.url("a"), "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARIABLES},
    )
    assert proc.returncode == 0, proc.stderr
    # stdout is a pipe: plain rows, one per file
    assert re.search(r"^done\s+15 B\s+\S+ s\s+1  a$", proc.stdout, re.MULTILINE), proc.stdout
    assert (tmp_path / "a").read_bytes() == b"from the script"


# -- errors after the options are read ------------------------------------------------------------
def test_json_report_that_cannot_be_written_exits_1(
    hostile: HostileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile.add("a", data=b"a")
    target = tmp_path / "missing" / "report.json"
    assert _get(hostile.url("a"), "--json", str(target), "-o", str(tmp_path / "out"), "-q") == 1
    assert (tmp_path / "out" / "a").read_bytes() == b"a"  # the download itself went well
    err = capsys.readouterr().err
    assert f"cannot write the JSON report to {target}: No such file or directory" in err


def test_a_folder_that_cannot_be_made_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("x", encoding="utf-8")
    assert _get("http://127.0.0.1:9/a", "-o", str(tmp_path / "file" / "sub")) == 1
    assert "threadwise get: error: Not a directory" in capsys.readouterr().err


def test_an_option_the_library_refuses_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import threadwise.download

    def refuse(*args: object, **options: object) -> None:
        raise ValueError(f"split must be at most 16, got {options['split']!r}")

    monkeypatch.setattr(threadwise.download, "download", refuse)
    assert _get("http://127.0.0.1:9/a", "--split", "99", "-o", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "usage: threadwise get" in err
    assert "error: split must be at most 16, got 99" in err


def test_a_usage_error_after_the_log_is_open_closes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "get.log"
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("not cookies\n", encoding="utf-8")
    argv = ["--log", str(log), "--load-cookies", str(cookies), "http://127.0.0.1:9/a"]
    assert _get(*argv) == 2
    assert "--load-cookies" in capsys.readouterr().err
    assert log.read_text(encoding="utf-8") == ""


def test_no_check_certificate_warns_before_and_after(
    https: HostileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _get(_https(https, "a"), "--no-check-certificate", "-o", str(tmp_path)) == 0
    err = capsys.readouterr().err
    assert err.count("TLS certificates are NOT checked") == 2
    assert err.index("NOT checked") < err.index("[1/1] done")


@pytest.mark.parametrize(("option", "ranged"), [("-c", 1), ("--no-resume", 0)])
def test_continue_resumes_and_no_resume_starts_over(
    option: str, ranged: int, tmp_path: Path
) -> None:
    with DemoServer() as server:
        served = server.add("big.bin", 2 << 20, cut_after=1 << 20, cut_times=1)
        argv = [server.url("big.bin"), "-s", "1", "-P", str(tmp_path), "-q"]
        assert _get(*argv, "-t", "0", "-T", "5") == 1  # cut after 1 MiB: a .part is left
        assert (tmp_path / "big.bin.part").stat().st_size >= 1 << 20
        assert _get(*argv, option) == 0
        assert served.range_requests == ranged
    assert hashlib.sha256((tmp_path / "big.bin").read_bytes()).hexdigest() == served.sha256


def test_input_from_standard_input_takes_per_url_options(
    hostile: HostileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    hostile.add("a", data=b"from stdin")
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{hostile.url('a')}\n  out=named.txt\n"))
    assert _get("-i", "-", "-o", str(tmp_path), "-q") == 0
    assert (tmp_path / "named.txt").read_bytes() == b"from stdin"


def test_input_file_that_cannot_be_read_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nothing.txt"
    assert _get("-i", str(missing)) == 2
    assert f"-i {missing}: cannot read the URL list: No such file or directory" in (
        capsys.readouterr().err
    )


def test_without_a_terminal_neither_rich_nor_urllib3_is_imported(
    hostile: HostileServer, tmp_path: Path
) -> None:
    # Each import costs tens of milliseconds, a large part of a small batch's wall time.
    hostile.add("a", data=b"a")
    code = (
        "import sys\n"
        "from threadwise.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "print('rich' in sys.modules, 'urllib3' in sys.modules, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "get", hostile.url("a"), "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARIABLES},
    )
    assert proc.returncode == 0, proc.stderr
    # Nor urllib3: plain http needs neither (the downloader loads it for https or a proxy).
    assert proc.stderr.splitlines()[-1] == "False False"
    assert re.search(r"^done .* a$", proc.stdout, re.MULTILINE)
