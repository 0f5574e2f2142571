"""One download's own options (``Request``) and the checks a URL gets before any request."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urlsplit

from ._files import _parse_checksum


@dataclass(frozen=True)
class Request:
    """A URL with options of its own: the output ``name``, a ``dir`` (relative: under the
    batch's destination), a ``checksum`` (``"sha256:<hex>"``) and extra ``headers``.

    The per-URL lines of an aria2 input file (``out=``, ``dir=``, ``checksum=``, ``header=``)
    map onto these fields.
    """

    url: str
    name: str | None = None
    dir: str | None = None
    checksum: str | None = None
    headers: Mapping[str, str] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
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


def url_problem(url: str, parts: SplitResult | None = None) -> str | None:
    """Why ``url`` cannot be downloaded, in words that say what to type instead; None if fine.
    ``parts``: ``urlsplit(url)``, when the caller has it."""
    if parts is None:
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
