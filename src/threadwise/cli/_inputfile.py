"""URL lists for ``threadwise get -i FILE``: one URL a line, each optionally followed by indented
``key=value`` lines that apply to it alone, as in aria2's input files::

    https://example.org/a.iso
      out=debian.iso
      dir=isos
      checksum=sha-256=4f1b...
      header=Authorization: Bearer 123
    https://example.org/b.iso

Blank lines and lines starting with ``#`` are skipped. Nothing here imports the downloader: the
entries become ``threadwise.download.Request`` objects when the download starts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ._args import parse_header

OPTIONS = ("out", "dir", "checksum", "header")

# An indented `key=value` line. A URL never matches: its scheme ends with ':' before any '='.
_OPTION = re.compile(r"\s+([A-Za-z][A-Za-z0-9_-]*)=(.*)")


class InputError(ValueError):
    """A line of a URL list that cannot be read; the message names the file and line."""


class Entry:
    """One URL of a list and the options given for it alone (a plain class: the
    ``dataclasses`` module would add to every ``threadwise get``'s start-up)."""

    __slots__ = ("checksum", "dir", "headers", "name", "url", "where")

    def __init__(
        self,
        url: str,
        where: str,  # "FILE:LINE", for error messages
        name: str | None = None,
        dir: str | None = None,
        checksum: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.url = url
        self.where = where
        self.name = name
        self.dir = dir
        self.checksum = checksum
        self.headers: dict[str, str] = {} if headers is None else headers

    def __repr__(self) -> str:
        return (
            f"Entry(url={self.url!r}, where={self.where!r}, name={self.name!r}, "
            f"dir={self.dir!r}, checksum={self.checksum!r}, headers={self.headers!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Entry):
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in Entry.__slots__)

    __hash__ = None  # type: ignore[assignment]


def read_entries(lines: Iterable[str], source: str) -> list[Entry]:
    """The entries of a URL list read from ``lines`` (``source`` names it in errors).

    Raises ``InputError`` for an option before any URL, an unknown option, an option given
    twice for one URL, a bad header, or several URLs on one line (aria2's mirrors).
    """
    entries: list[Entry] = []
    for number, line in enumerate(lines, 1):
        where = f"{source}:{number}"
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        # An option line is indented: a URL's line (most of them) needs no regex.
        option = _OPTION.fullmatch(line.rstrip("\r\n")) if line[:1].isspace() else None
        if option is None:
            if len(text.split()) > 1:
                raise InputError(
                    f"{where}: several URLs on one line ({text!r}); mirrors are not "
                    f"supported: give one URL a line"
                )
            entries.append(Entry(url=text, where=where))
            continue
        key, value = option.group(1).lower(), option.group(2).strip()
        if not entries:
            raise InputError(f"{where}: option {key}= before any URL")
        _apply(entries[-1], key, value, where)
    return entries


def _apply(entry: Entry, key: str, value: str, where: str) -> None:
    if key == "header":
        try:
            name, content = parse_header(value)
        except ValueError as exc:
            raise InputError(f"{where}: header={value}: {exc}") from None
        entry.headers[name] = content
        return
    if key not in OPTIONS:
        raise InputError(f"{where}: unknown option {key}= (known: {', '.join(OPTIONS)})")
    attribute = "name" if key == "out" else key
    if getattr(entry, attribute) is not None:
        raise InputError(f"{where}: {key}= given twice for {entry.url}")
    if not value:
        raise InputError(f"{where}: {key}= needs a value")
    setattr(entry, attribute, value)
