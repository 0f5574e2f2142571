"""Argument types shared by the ``threadwise`` subcommands: numbers within bounds and sizes
such as ``64K`` or ``1.5M``. Each error says what was expected and what was given; argparse puts
the option's name in front."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

from threadwise._typing import TypeVar

Number = TypeVar("Number", int, float)

# Powers of 1024, as wget, aria2 and curl read 500k or 1M.
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
}
_SIZE = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*")


def number(
    kind: Callable[[str], Number],
    what: str,
    *,
    minimum: Number,
    inclusive: bool,
    maximum: float | None = None,
) -> Callable[[str], Number]:
    """An argparse ``type`` for finite numbers of ``kind`` above (or at, with ``inclusive``)
    ``minimum`` and at most ``maximum``; the error says what was ``expected``."""

    def parse(text: str) -> Number:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        ok = value >= minimum if inclusive else value > minimum
        if not (ok and math.isfinite(value)) or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


def parse_size(text: str) -> float:
    """``"256K"``, ``"256KiB"``, ``"1.5M"``, ``"16384"`` → bytes (units are powers of 1024)."""
    match = _SIZE.fullmatch(text)
    if match is None or match.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2).lower()]


def size(what: str, *, zero: bool, maximum: float | None = None) -> Callable[[str], int]:
    """An argparse ``type`` for a whole number of bytes written like ``500k`` or ``1.5M``;
    0 only with ``zero``; less than one byte (``0.1``) is refused rather than rounded to 0."""
    parse = number(parse_size, what, minimum=0.0, inclusive=zero, maximum=maximum)

    def parse_bytes(text: str) -> int:
        value = parse(text)
        if value and round(value) == 0:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return round(value)

    return parse_bytes


def parse_header(text: str) -> tuple[str, str]:
    """``"Name: value"`` → ``("Name", "value")``; ValueError when it is not a header line."""
    name, colon, value = text.partition(":")
    name = name.strip()
    if not colon or not name or any(c.isspace() for c in name) or "\n" in value:
        raise ValueError(f"expected 'Name: value', got {text!r}")
    return name, value.strip()


def header(text: str) -> tuple[str, str]:
    """An argparse ``type`` for ``--header 'Name: value'``."""
    try:
        return parse_header(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
