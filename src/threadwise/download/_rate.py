"""Bandwidth limits: a token bucket shared by the threads it limits."""

from __future__ import annotations

import threading
import time

from .._cancel import sleep


class RateLimit:
    """At most ``rate`` bytes a second on average, with a burst of a tenth of a second.

    ``take(n)`` books ``n`` bytes and sleeps (cancellably) until they fit the rate; many
    threads may share one limit.
    """

    __slots__ = ("_burst", "_lock", "_next", "rate")

    def __init__(self, rate: float) -> None:
        self.rate = float(rate)
        self._burst = self.rate / 10
        self._lock = threading.Lock()
        self._next = time.monotonic()  # when the bytes booked so far will have been "paid"

    def take(self, n: int) -> None:
        now = time.monotonic()
        with self._lock:
            # Time not used in the past is forgotten beyond one burst: no catch-up flood.
            start = max(self._next, now - self._burst / self.rate)
            self._next = start + n / self.rate
            wait = self._next - now - self._burst / self.rate
        if wait > 0:
            sleep(wait)

    def chunk(self) -> int:
        """A read size that keeps the flow smooth at this rate (about 20 reads a second)."""
        return max(4096, int(self.rate / 20))
