"""The engine under map and pipelines: worker threads under one cancel scope, adaptive chunk
sizes, and a shared rate limit."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ._cancel import CancelScope, sleep
from ._task import Task, _bind, abandon, cancel_and_wait

_monotonic = time.monotonic


class Workers:
    """Threads started under one cancel scope and stopped together.

    Unlike a ``TaskGroup`` it does not push its scope on the creating thread, so it can live
    across the ``yield``s of a generator (``map`` hands results out while its workers run).
    """

    def __init__(self, name: str, parent: CancelScope | None, *, grace: float = 1.0) -> None:
        self.name = name
        self.scope = CancelScope(name=name)
        self.scope._attach(parent)
        self.grace = grace
        self.tasks: list[Task[Any]] = []

    def start(self, fn: Callable[[], object], name: str) -> Task[Any]:
        """Start ``fn`` in a new thread, in a copy of the caller's ``contextvars`` context."""
        task: Task[Any] = Task(_bind(fn, (), {}), name, parent_scope=self.scope)
        self.tasks.append(task)
        try:
            task._start_thread(register_live=False)
        except Exception:
            # The thread never started (e.g. "can't start new thread"): nothing to wait for.
            # (On Ctrl-C it may have started: it stays listed, join() stops it.)
            self.tasks.remove(task)
            task._scope._detach()
            raise
        return task

    def cancel(self, reason: str) -> None:
        self.scope.cancel(reason)

    def join(self) -> list[Task[Any]]:
        """Wait for every worker. Ctrl-C or a prior cancel gives them ``grace`` seconds; the
        ones still stuck after it are reported as abandoned and returned. A thread that has
        finished its work but not yet exited (a blocking thread-local close hook, say) also
        gets ``grace`` seconds, and is abandoned after it."""
        stuck: list[Task[Any]] = []
        try:
            if self.scope._is_cancelled():
                stuck = cancel_and_wait(self.tasks, self.scope._reason or "cancelled", self.grace)
            else:
                for task in self.tasks:
                    task._wait_finished(None, "ignore")
        except KeyboardInterrupt:
            stuck = cancel_and_wait(self.tasks, f"{self.name} was interrupted (Ctrl-C)", self.grace)
            abandon(stuck, f"{self.name} was interrupted (Ctrl-C)")
            abandon(self._join_threads(stuck), f"{self.name} was interrupted (Ctrl-C)")
            raise
        abandon(stuck, f"{self.name} was cancelled")
        lingering = self._join_threads(stuck)
        abandon(lingering, f"{self.name}: threads did not exit within {self.grace:g} s")
        return stuck + lingering

    def _join_threads(self, stuck: list[Task[Any]]) -> list[Task[Any]]:
        """Join the threads of the finished tasks, within ``grace`` in all: the ones still
        alive after it."""
        end = _monotonic() + self.grace
        lingering = []
        for task in self.tasks:
            thread = task._thread
            if task in stuck or thread is None or thread.ident is None:
                continue
            thread.join(max(0.0, end - _monotonic()))
            if thread.is_alive():
                lingering.append(task)
        return lingering


class ChunkSizer:
    """Picks how many items travel together, from the measured time per item.

    Trivial items go in large chunks (the hand-over cost all but disappears); slow items go
    one by one (so they spread over every worker). Updates race benignly: a float store.
    """

    __slots__ = ("cost", "fixed", "target")

    TARGET_SECONDS = 0.002  # the work one chunk should carry
    MAX_ITEMS = 1024

    def __init__(self, fixed: int | None = None, *, target: float = TARGET_SECONDS) -> None:
        self.fixed = fixed
        # A remote executor costs a round trip per chunk: give it a larger target, so chunks
        # grow until the round trip is a small part of each.
        self.target = target
        self.cost: float | None = None  # seconds per item (hand-over included), smoothed

    def size(self) -> int:
        if self.fixed is not None:
            return self.fixed
        cost = self.cost
        if cost is None:
            return 1
        if cost <= 0:
            return self.MAX_ITEMS
        return max(1, min(self.MAX_ITEMS, int(self.target / cost)))

    def record(self, items: int, seconds: float) -> None:
        if items <= 0:
            return
        sample = seconds / items
        cost = self.cost
        self.cost = sample if cost is None else 0.7 * cost + 0.3 * sample


class RateLimiter:
    """At most ``rate`` calls per second, shared by every thread that calls ``wait()``."""

    __slots__ = ("_interval", "_lock", "_next", "rate")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._interval = 1.0 / rate
        self._lock = threading.Lock()
        self._next = _monotonic()

    def wait(self) -> None:
        with self._lock:
            now = _monotonic()
            slot = max(now, self._next)
            self._next = slot + self._interval
        if slot > now:
            sleep(slot - now)  # cancellable
