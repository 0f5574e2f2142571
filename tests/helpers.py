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
