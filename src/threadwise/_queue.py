"""Cancellable queues on the standard library's template: ``Queue``, ``LifoQueue``,
``PriorityQueue``.

The layout is ``queue.Queue``'s (``mutex``, the conditions ``not_empty`` / ``not_full`` /
``all_tasks_done``, the ``_init`` / ``_qsize`` / ``_put`` / ``_get`` hooks that subclasses
override), with threadwise conditions so every wait is cancellable and shows as BLOCKED.
``shutdown()`` has Python 3.13's meaning on every Python; ``close()`` is ``shutdown()``.
"""

from __future__ import annotations

import threading

# The C halves of heapq and queue (heapq.heappush and queue.Empty are these very objects):
# the Python modules, with what they import, would add a tenth to `import threadwise`.
from _heapq import heappop, heappush
from _queue import Empty
from collections import deque
from collections.abc import Iterator

from ._exceptions import QueueClosed
from ._sync import Condition, _end_of, _remaining, strict_timeout
from ._typing import Any, Generic, TypeVar
from ._validate import check_name

T = TypeVar("T")


def _full() -> type[Exception]:
    """``queue.Full``, imported when first raised (a bounded queue that is full)."""
    import queue

    return queue.Full


class Queue(Generic[T]):
    """A FIFO queue with cancellable ``put``/``get``, ``task_done``/``join`` and ``shutdown``.

    After ``shutdown()`` (or ``close()``), ``put`` raises ``QueueClosed``; consumers still
    receive every item already queued, then ``get`` raises ``QueueClosed`` and iteration stops.
    ``shutdown(immediate=True)`` also drops the queued items.
    """

    __slots__ = (
        "__weakref__",
        "_name",
        "all_tasks_done",
        "is_shutdown",
        "maxsize",
        "mutex",
        "not_empty",
        "not_full",
        "queue",
        "unfinished_tasks",
    )

    def __init__(self, maxsize: int = 0, name: str | None = None) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise TypeError(f"maxsize must be an int (0 or less: unbounded), got {maxsize!r}")
        self._name = check_name(name)
        self.maxsize = maxsize  # may be changed later, as in queue.Queue
        self._init(maxsize)
        self.mutex = threading.Lock()
        self.not_empty = Condition(self.mutex)
        self.not_full = Condition(self.mutex)
        self.all_tasks_done = Condition(self.mutex)
        self.unfinished_tasks = 0
        self.is_shutdown = False

    # -- the hooks subclasses override (called with the mutex held) ---------------------------
    def _init(self, maxsize: int) -> None:
        self.queue: Any = deque()

    def _qsize(self) -> int:
        return len(self.queue)

    def _put(self, item: T) -> None:
        self.queue.append(item)

    def _get(self) -> T:
        item: T = self.queue.popleft()
        return item

    # -- public ------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self.is_shutdown

    def qsize(self) -> int:
        """Approximate number of items (another thread may change it at once)."""
        with self.mutex:
            return self._qsize()

    def empty(self) -> bool:
        with self.mutex:
            return not self._qsize()

    def full(self) -> bool:
        with self.mutex:
            return 0 < self.maxsize <= self._qsize()

    def put(self, item: T, block: bool = True, timeout: float | None = None) -> None:
        seconds = None if timeout is None or not block else strict_timeout(timeout)
        with self.mutex:
            if self.is_shutdown:
                raise QueueClosed(f"put() on closed {self._describe()}")
            if 0 < self.maxsize <= self._qsize():
                if not block:
                    raise _full()
                end = _end_of(seconds)
                while 0 < self.maxsize <= self._qsize():
                    left = _remaining(end)
                    if left is not None and left <= 0:
                        raise _full()
                    self.not_full._wait(left, (self, "put"))
                    if self.is_shutdown:
                        raise QueueClosed(f"{self._describe()} was closed while put() waited")
            self._put(item)
            self.unfinished_tasks += 1
            self.not_empty._notify(1)

    def put_nowait(self, item: T) -> None:
        self.put(item, block=False)

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        seconds = None if timeout is None or not block else strict_timeout(timeout)
        with self.mutex:
            if not self._qsize():
                if self.is_shutdown:
                    raise QueueClosed(f"get() on closed and empty {self._describe()}")
                if not block:
                    raise Empty
                end = _end_of(seconds)
                while not self._qsize():
                    left = _remaining(end)
                    if left is not None and left <= 0:
                        raise Empty
                    self.not_empty._wait(left, (self, "get"))
                    if self.is_shutdown and not self._qsize():
                        raise QueueClosed(f"get() on closed and empty {self._describe()}")
            item = self._get()
            self.not_full._notify(1)
            return item

    def get_nowait(self) -> T:
        return self.get(block=False)

    def task_done(self) -> None:
        """Mark one item taken with ``get()`` as processed (for ``join()``)."""
        with self.mutex:
            unfinished = self.unfinished_tasks - 1
            if unfinished < 0:
                raise ValueError(f"task_done() called too many times on {self._describe()}")
            if unfinished == 0:
                self.all_tasks_done._notify(len(self.all_tasks_done._waiters))
            self.unfinished_tasks = unfinished

    def join(self) -> None:
        """Wait (cancellably) until every item put has been marked ``task_done()``."""
        with self.mutex:
            while self.unfinished_tasks:
                self.all_tasks_done._wait(None, (self, "join"))

    def shutdown(self, immediate: bool = False) -> None:
        """No more puts; gets drain what is queued, then raise ``QueueClosed``. Idempotent.

        With ``immediate=True`` the queued items are dropped (each counts as done for
        ``join()``) and gets raise at once.
        """
        with self.mutex:
            self.is_shutdown = True
            if immediate:
                while self._qsize():
                    self._get()
                    if self.unfinished_tasks > 0:
                        self.unfinished_tasks -= 1
                self.all_tasks_done._notify(len(self.all_tasks_done._waiters))
            self.not_empty._notify(len(self.not_empty._waiters))
            self.not_full._notify(len(self.not_full._waiters))

    def close(self) -> None:
        """``shutdown()``: no more puts; consumers drain what is queued, then stop."""
        self.shutdown()

    def __iter__(self) -> Iterator[T]:
        while True:
            try:
                yield self.get()
            except QueueClosed:
                return

    def _describe(self) -> str:
        kind = type(self).__name__
        return f"{kind} {self._name!r}" if self._name else kind

    def _describe_wait(self, verb: str) -> str:
        kind = type(self).__name__
        return f"{kind}.{verb} on {self._name!r}" if self._name else f"{kind}.{verb}"

    def __repr__(self) -> str:
        name = f" {self._name!r}" if self._name else ""
        state = "shut down" if self.is_shutdown else "open"
        return (
            f"<threadwise.{type(self).__name__}{name} at {id(self):#x}: {state}, "
            f"{self._qsize()} items, maxsize={self.maxsize}>"
        )


class LifoQueue(Queue[T]):
    """A last-in, first-out queue (a stack), cancellable like ``Queue``."""

    __slots__ = ()

    def _init(self, maxsize: int) -> None:
        self.queue = []

    def _put(self, item: T) -> None:
        self.queue.append(item)

    def _get(self) -> T:
        item: T = self.queue.pop()
        return item


class PriorityQueue(Queue[T]):
    """Gets the smallest item first (entries are often ``(priority, data)`` tuples)."""

    __slots__ = ()

    def _init(self, maxsize: int) -> None:
        self.queue = []

    def _put(self, item: T) -> None:
        heappush(self.queue, item)

    def _get(self) -> T:
        item: T = heappop(self.queue)
        return item
