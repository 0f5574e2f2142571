"""Small pure functions of the downloader: URL checks, no_proxy rules, proxy variables,
checksum forms, HTTP dates, Request validation."""

from __future__ import annotations

import time

import pytest

from threadwise.download import Request
from threadwise.download._download import _http_date
from threadwise.download._net import _bypass, _environment_proxies, strip_userinfo
from threadwise.download._report import plural
from threadwise.download._request import parse_checksum_option, url_problem


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://example.org/a", None),
        ("https://[::1]:8443/a", None),
        ("", "not a URL: an empty string"),
        ("none", "not a URL: 'none' (did you mean http://none?)"),
        ("localhost:8080/x", "not a URL: 'localhost:8080/x' (did you mean http://localhost:8080/x?)"),
        ("ftp://x.org/a", "unsupported URL scheme 'ftp' in ftp://x.org/a (only http and https)"),
        ("http://example.org:99999/a", "not a URL: 'http://example.org:99999/a' (bad port)"),
        ("http://:80/a", "not a URL: 'http://:80/a' (no host)"),
        ("http://[::1/a", "not a URL: 'http://[::1/a' (Invalid IPv6 URL)"),
    ],
)  # fmt: skip
def test_url_problems_say_what_to_type(url: str, problem: str | None) -> None:
    assert url_problem(url) == problem


@pytest.mark.parametrize(
    ("host", "port", "rule", "bypass"),
    [
        ("a.example.com", 80, "example.com", True),
        ("a.example.com", 80, ".example.com", True),
        ("example.com", 80, ".example.com", True),
        ("badexample.com", 80, "example.com", False),
        ("anything", 80, "*", True),
        ("host", 8080, "host:8080", True),
        ("host", 80, "host:8080", False),
        ("host", 80, "host:x", False),
        ("::1", 80, "[::1]", True),
        ("host", 80, " , other ,", False),
    ],
)
def test_no_proxy_rules(host: str, port: int, rule: str, bypass: bool) -> None:
    assert _bypass(host, port, rule) is bypass


def test_environment_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://upper:1")
    monkeypatch.setenv("https_proxy", "http://lower:2")
    monkeypatch.setenv("HTTPS_PROXY", "http://upper:2")
    assert _environment_proxies() == {"http": "http://upper:1", "https": "http://lower:2"}
    monkeypatch.setenv("REQUEST_METHOD", "GET")  # a CGI script: HTTP_PROXY may be forged
    assert _environment_proxies() == {"https": "http://lower:2"}


def test_strip_userinfo() -> None:
    assert strip_userinfo("http://u:p@host:8/a?b") == "http://host:8/a?b"
    assert strip_userinfo("http://host/a") == "http://host/a"


def test_checksum_forms() -> None:
    digest = "ab" * 32
    assert parse_checksum_option(f"sha-256={digest}", "x") == ("sha256", digest)
    assert parse_checksum_option(f"sha256:{digest.upper()}", "x") == ("sha256", digest)
    assert parse_checksum_option(digest, "x") == ("sha256", digest)
    with pytest.raises(ValueError, match="unknown algorithm"):
        parse_checksum_option("nope=00", "x")


def test_http_dates() -> None:
    assert _http_date("Tue, 14 Nov 2023 22:13:20 GMT") == 1_700_000_000.0
    assert _http_date("Tuesday, 14-Nov-23 22:13:20 GMT") == 1_700_000_000.0  # RFC 850
    assert _http_date("not a date") is None
    assert _http_date("not a date") is None  # remembered


def test_request_validation() -> None:
    with pytest.raises(TypeError, match="name"):
        Request("http://x/a", name=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dir"):
        Request("http://x/a", dir=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="checksum"):
        Request("http://x/a", checksum=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="headers"):
        Request("http://x/a", headers=[("a", "b")])  # type: ignore[arg-type]
    assert Request("http://x/a", name="b.bin", dir="sub").name == "b.bin"


def test_plural() -> None:
    assert plural(1, "file") == "1 file"
    assert plural(0, "file") == "0 files"
    assert plural(2, "entry", "entries") == "2 entries"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"auth": ("only-user",)}, TypeError, "auth"),
        ({"headers": [("a", "b")]}, TypeError, "headers"),
        ({"headers": {"a": 1}}, TypeError, "headers"),
        ({"user_agent": 5}, TypeError, "user_agent"),
        ({"netrc": 5}, TypeError, "netrc"),
        ({"lowest_speed_time": 0}, ValueError, "lowest_speed_time"),
        ({"min_split_size": 1.5}, TypeError, "min_split_size"),
        ({"proxy": 5}, TypeError, "proxy"),
        ({"per_host": 0}, ValueError, "per_host"),
    ],
)
def test_bad_options_name_the_argument(
    tmp_path: object, kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    from threadwise.download import download

    with pytest.raises(error, match=match):
        download([], str(tmp_path), **kwargs)  # type: ignore[arg-type]


def test_urls_must_be_strings_or_requests(tmp_path: object) -> None:
    from threadwise.download import download

    with pytest.raises(TypeError, match="urls"):
        download([42], str(tmp_path))  # type: ignore[list-item]


def test_http_dates_match_calendar_timegm() -> None:
    import calendar
    import email.utils
    import random

    rng = random.Random(12)
    moments = [0, 951782400, 4107542400, -2208988800] + [
        rng.randint(-(2**34), 2**34) for _ in range(3000)
    ]
    for moment in moments:
        text = email.utils.formatdate(moment, usegmt=True)
        assert _http_date(text) == float(calendar.timegm(time.gmtime(moment))), text
    assert _http_date("Sun, 31 Feb 2026 00:00:00 GMT") is not None  # as lenient as timegm
    assert _http_date("Sun, 32 Jan 2026 00:00:00 GMT") is None
