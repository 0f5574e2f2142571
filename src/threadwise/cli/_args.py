"""Argument types shared by the ``threadwise`` subcommands."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TypeVar

Number = TypeVar("Number", int, float)


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
