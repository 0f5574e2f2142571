"""Small helpers shared by several test modules."""

from __future__ import annotations

from collections.abc import Iterator


class Counted:
    """An iterator over ``source`` that counts how many items were pulled from it."""

    def __init__(self, source: Iterator[int]) -> None:
        self.source = source
        self.pulled = 0

    def __iter__(self) -> Iterator[int]:
        return self

    def __next__(self) -> int:
        item = next(self.source)
        self.pulled += 1
        return item


def spin(n: int) -> int:
    """Pure Python, holds the GIL all along (about 0.1 us per step). Here rather than in a
    test module, so that the worker processes of a process pool import little to run it."""
    total = 0
    for i in range(n):
        total += i % 7
    return total


def auto_work(x: int) -> int:
    """Some GIL-bound work whose result names its item (a lost or repeated item shows), and
    fails for every 50th item."""
    if x % 50 == 49:
        raise ValueError(f"no {x}")
    return x * 1_000_000 + spin(3_000)
