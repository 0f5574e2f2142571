"""One download's own options (``Request``) and the checks a URL gets before any request."""

from __future__ import annotations

import os
from collections.abc import Mapping

from threadwise._typing import TYPE_CHECKING

from ._files import _parse_checksum

if TYPE_CHECKING:
    from urllib.parse import SplitResult


class Request:
    """A URL with options of its own: the output ``name``, a ``dir`` (relative: under the
    batch's destination), a ``checksum`` (``"sha256:<hex>"``) and extra ``headers``.

    The per-URL lines of an aria2 input file (``out=``, ``dir=``, ``checksum=``, ``header=``)
    map onto these fields.

    Immutable, compared and hashed by value (the headers take no part in the hash), as a
    frozen dataclass: written out so that a download does not import ``dataclasses``.
    """

    __slots__ = ("checksum", "dir", "headers", "name", "url")
    __match_args__ = ("url", "name", "dir", "checksum", "headers")

    url: str
    name: str | None
    dir: str | None
    checksum: str | None
    headers: Mapping[str, str] | None

    def __init__(
        self,
        url: str,
        name: str | None = None,
        dir: str | None = None,
        checksum: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "url", url)
        setattr_(self, "name", name)
        setattr_(self, "dir", dir)
        setattr_(self, "checksum", checksum)
        setattr_(self, "headers", headers)
        self._check()

    def _values(self) -> tuple[object, ...]:
        return (self.url, self.name, self.dir, self.checksum, self.headers)

    def __repr__(self) -> str:
        return (
            f"Request(url={self.url!r}, name={self.name!r}, dir={self.dir!r}, "
            f"checksum={self.checksum!r}, headers={self.headers!r})"
        )

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Request)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((self.url, self.name, self.dir, self.checksum))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: Request is frozen")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: Request is frozen")

    def __reduce__(self) -> tuple[type[Request], tuple[object, ...]]:
        return Request, self._values()

    def _check(self) -> None:
        if not isinstance(self.url, str):
            raise TypeError(f"Request.url must be a string, got {self.url!r}")
        if self.name is not None:
            if not isinstance(self.name, str):
                raise TypeError(f"Request.name must be a string or None, got {self.name!r}")
            if (
                not self.name
                or self.name in (".", "..")
                or "/" in self.name
                or "\\" in self.name
                or "\x00" in self.name
            ):
                raise ValueError(
                    f"Request.name must be a plain file name (no folders: use dir=), "
                    f"got {self.name!r}"
                )
        if self.dir is not None and not isinstance(self.dir, str | os.PathLike):
            raise TypeError(f"Request.dir must be a path or None, got {self.dir!r}")
        if self.checksum is not None:
            if not isinstance(self.checksum, str):
                raise TypeError(f"Request.checksum must be a string, got {self.checksum!r}")
            parse_checksum_option(self.checksum, "Request.checksum")
        if self.headers is not None and not isinstance(self.headers, Mapping):
            raise TypeError(f"Request.headers must be a mapping or None, got {self.headers!r}")


def parse_checksum_option(value: str, where: str) -> tuple[str, str]:
    """``sha256:<hex>`` or aria2's ``sha-256=<hex>``."""
    text = value.strip()
    algorithm, eq, digest = text.partition("=")
    if eq and ":" not in algorithm:
        text = f"{algorithm.replace('-', '')}:{digest}"
    return _parse_checksum(text, where)


def url_problem(url: str, parts: UrlParts | SplitResult | None = None) -> str | None:
    """Why ``url`` cannot be downloaded, in words that say what to type instead; None if fine.
    ``parts``: ``urlsplit(url)``, when the caller has it."""
    if parts is None:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(url)
        except ValueError as exc:
            return f"not a URL: {url!r} ({exc})"
    scheme = parts.scheme.lower()
    if not scheme or not parts.netloc:
        if not url.strip():
            return "not a URL: an empty string"
        guess = url if "://" not in url else url.split("://", 1)[1]
        return f"not a URL: {url!r} (did you mean http://{guess.lstrip('/')}?)"
    if scheme not in ("http", "https"):
        return f"unsupported URL scheme {scheme!r} in {url} (only http and https)"
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return f"not a URL: {url!r} (bad port)"
    if not parts.hostname:
        return f"not a URL: {url!r} (no host)"
    return None


class UrlParts:
    """What ``urlsplit`` gives for a plain ``http://host[:port]/path?query`` URL, found without
    importing ``urllib.parse`` (and without its checks, which such a URL does not need). Other
    URLs are split by ``urlsplit`` itself: see ``split_url``."""

    __slots__ = ("fragment", "hostname", "netloc", "path", "port", "query")

    scheme = "http"
    username = None
    password = None

    def __init__(
        self, netloc: str, path: str, query: str, fragment: str, hostname: str, port: int | None
    ) -> None:
        self.netloc = netloc
        self.path = path
        self.query = query
        self.fragment = fragment
        self.hostname = hostname
        self.port = port


def split_url(url: str) -> UrlParts | SplitResult:
    """``urlsplit(url)``, quicker for the common plain-http URL. Raises ValueError as
    ``urlsplit`` does."""
    if (
        url.startswith("http://")
        and url.isascii()
        and url.isprintable()
        and " " not in url
        and "@" not in url
        and "[" not in url
        and "\\" not in url
    ):
        rest, _, fragment = url[7:].partition("#")
        end = len(rest)
        for stop in ("/", "?"):
            at = rest.find(stop)
            if 0 <= at < end:
                end = at
        netloc, rest = rest[:end], rest[end:]
        path, _, query = rest.partition("?")
        host, colon, port_text = netloc.partition(":")
        if host and ":" not in port_text:
            if not colon or not port_text:
                return UrlParts(netloc, path, query, fragment, host.lower(), None)
            if port_text.isdigit() and int(port_text) <= 65535:
                return UrlParts(netloc, path, query, fragment, host.lower(), int(port_text))
    from urllib.parse import urlsplit

    return urlsplit(url)
