"""Argument checks shared by the public API: errors name the argument and the value."""

from __future__ import annotations

import math
from collections.abc import Callable

from ._typing import Any

# Seconds beyond which a timeout is "no limit" (about 31 million years). Larger ints would not
# even convert to a float.
_FOREVER = 10**15


def check_timeout(value: object, name: str = "timeout") -> float | None:
    """Return the timeout in seconds (None: no limit); reject negatives, NaN and non-numbers."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds or None, got {value!r}")
    if isinstance(value, int) and value > _FOREVER:
        return None  # e.g. 10**400: no float can hold it, and it means "practically forever"
    if math.isnan(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative number of seconds, got {value!r}")
    if math.isinf(value):
        return None
    return float(value)


def check_positive_int(value: object, name: str, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        kind = "an int >= 1" + (" or None" if allow_none else "")
        raise TypeError(f"{name} must be {kind}, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return value


def check_non_negative_int(value: object, name: str, note: str = "") -> int:
    """``value`` as an int >= 0; ``note`` adds what 0 means, e.g. " (0 for unbounded)"."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= 0{note}, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be an int >= 0{note}, got {value!r}")
    return value


def check_callable(fn: object, name: str = "fn") -> None:
    if not callable(fn):
        raise TypeError(
            f"{name} must be callable, got {fn!r} (pass the function and its arguments "
            "separately: spawn(fn, x), not spawn(fn(x)))"
        )


def check_name(value: object, name: str = "name") -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"{name} must be a str or None, got {value!r}")


def describe_callable(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return name if isinstance(name, str) else type(fn).__name__
