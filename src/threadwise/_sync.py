"""Cancellable, deadline-aware synchronisation primitives with the stdlib's method names.

Each one keeps its state under a private mutex and parks waiters in a ``ParkingLot``; every
wait goes through ``_cancel.block``, so it raises ``Cancelled`` promptly when the waiting
thread's scope is cancelled and shows the thread as BLOCKED on a described primitive.
"""

from __future__ import annotations

import queue as _stdlib_queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar, cast

from . import _debug
from ._cancel import CancelMode, Waiter, block
from ._exceptions import DeadlockError, QueueClosed
from ._state import ThreadState, Waitable, all_states, current_state, thread_name
from ._validate import check_name, check_non_negative_int, check_timeout

T = TypeVar("T")
_monotonic = time.monotonic
_get_ident = threading.get_ident


class ParkingLot:
    """FIFO of parked threads. Every method is called with the owner's mutex held."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: deque[Waiter] = deque()

    def __len__(self) -> int:
        return len(self._waiters)

    def enqueue(self) -> Waiter:
        waiter = Waiter()
        self._waiters.append(waiter)
        return waiter

    def dequeue(self, waiter: Waiter, *, pass_on: bool) -> None:
        """Forget ``waiter``; if a notify already reached it, hand that notify to the next one."""
        if waiter.notified:
            if pass_on:
                self.unpark_one()
        else:
            try:
                self._waiters.remove(waiter)
            except ValueError:
                pass

    def wait(
        self,
        waiter: Waiter,
        mutex: threading.Lock,
        timeout: float | None,
        blocked_on: tuple[Waitable, str] | None,
        *,
        cancel: CancelMode = "raise",
    ) -> bool:
        """Release ``mutex``, park until notified / timed out / cancelled, re-take ``mutex``."""
        mutex.release()
        try:
            woken = block(waiter, timeout, blocked_on, cancel=cancel)
        except BaseException:
            mutex.acquire()
            # A notify that reached a waiter who is leaving would be lost: pass it on.
            self.dequeue(waiter, pass_on=True)
            raise
        mutex.acquire()
        if waiter.notified:
            return True
        self.dequeue(waiter, pass_on=False)
        return woken

    def park(
        self,
        mutex: threading.Lock,
        timeout: float | None,
        blocked_on: tuple[Waitable, str] | None,
        *,
        cancel: CancelMode = "raise",
    ) -> bool:
        return self.wait(self.enqueue(), mutex, timeout, blocked_on, cancel=cancel)

    def unpark_one(self) -> bool:
        if self._waiters:
            waiter = self._waiters.popleft()
            waiter.notified = True
            waiter.wake()
            return True
        return False

    def unpark_all(self) -> None:
        while self.unpark_one():
            pass


# A module global, not `_debug.enabled`: one attribute load less on every acquire and release.
_debug_on = _debug.enabled


def _set_debug(on: bool) -> None:
    global _debug_on
    _debug_on = on


_debug.on_change(_set_debug)

# Guards the wait-for graph (who waits for which lock): checking for a cycle and adding our
# own edge happen under it together, so two threads closing a cycle at once cannot both miss it.
_wait_graph_lock = threading.Lock()


def _enter_wait_graph(lock: Lock, state: ThreadState) -> None:
    """Record that this thread waits for ``lock``; raise DeadlockError if that closes a cycle."""
    me = _get_ident()
    with _wait_graph_lock:
        chain: list[tuple[int, Lock]] = []
        current: Lock | None = lock
        seen: set[int] = set()
        states = all_states()
        while current is not None:
            owner = current._owner
            if owner is None or owner in seen:
                break  # a free lock, or a cycle not through us: not ours to report
            chain.append((owner, current))
            if owner == me:
                raise DeadlockError(_describe_cycle(me, chain))
            seen.add(owner)
            other = states.get(owner)
            current = other.waiting_lock if other is not None else None
        state.waiting_lock = lock


def _describe_cycle(me: int, chain: list[tuple[int, Lock]]) -> str:
    """``chain[i]`` is (owner, lock): thread ``me`` waits for chain[0]'s lock, whose owner
    waits for chain[1]'s lock, ... and the last owner is ``me``."""
    parts = [f"{thread_name(me)} waits for {chain[0][1]._describe()}"]
    for i, (owner, _) in enumerate(chain):
        if owner == me:
            parts.append(f"held by {thread_name(me)} itself")
        else:
            parts.append(
                f"held by {thread_name(owner)}, which waits for {chain[i + 1][1]._describe()}"
            )
    return "deadlock: " + ", ".join(parts)


def _remaining(end: float | None) -> float | None:
    return None if end is None else end - _monotonic()


def _end_of(timeout: float | None) -> float | None:
    return None if timeout is None else _monotonic() + timeout


def _label(kind: str, name: str | None) -> str:
    return f"{kind} {name!r}" if name else kind


class _WithAcquireRelease:
    """``with x:`` calls ``x.acquire()`` and ``x.release()``."""

    __slots__ = ()

    def __enter__(self) -> bool:
        acquired: bool = cast(Any, self).acquire()
        return acquired

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        cast(Any, self).release()


class Lock:
    """A mutual-exclusion lock whose blocking ``acquire`` is cancellable and shows its holder.

    The uncontended path is one non-blocking acquire of an inner ``threading.Lock``.
    """

    __slots__ = ("_inner", "_lot", "_mutex", "_name", "_owner", "_waiters")

    def __init__(self, name: str | None = None) -> None:
        self._name = check_name(name)
        self._inner = threading.Lock()
        self._mutex = threading.Lock()
        self._lot = ParkingLot()
        self._waiters = self._lot._waiters  # the same deque: one attribute load on release
        self._owner: int | None = None

    @property
    def name(self) -> str | None:
        return self._name

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if blocking and timeout == -1:  # the common call: nothing to check
            if _debug_on and self._name is not None:
                return self._acquire_debug(True, None)
            if self._inner.acquire(False):
                self._owner = _get_ident()
                return True
            return self._acquire_slow(None, "raise")
        seconds = None
        if timeout != -1:  # -1 is the stdlib's "no timeout"
            if not blocking:
                raise ValueError("can't specify a timeout for a non-blocking acquire")
            seconds = check_timeout(timeout)
        if _debug_on and self._name is not None:
            return self._acquire_debug(blocking, seconds)
        if self._inner.acquire(False):
            self._owner = _get_ident()
            return True
        if not blocking:
            return False
        return self._acquire_slow(seconds, "raise")

    def _acquire_debug(self, blocking: bool, seconds: float | None) -> bool:
        name = self._name
        assert name is not None
        held = _debug.held_list()
        if held and name not in held:
            # Inlined fast check of _debug.before_acquire: every "held -> name" order known.
            edges = _debug.edges
            for holding in held:
                known = edges.get(holding)
                if known is None or name not in known:
                    _debug.before_acquire(name, held)
                    break
        if self._inner.acquire(False):
            self._owner = _get_ident()
        elif not blocking or not self._acquire_slow(seconds, "raise"):
            return False
        held.append(name)
        return True

    def _acquire_slow(self, timeout: float | None, cancel: CancelMode) -> bool:
        end = _end_of(timeout)
        mutex = self._mutex
        lot = self._lot
        with mutex:
            while True:
                # Enqueue *before* retrying: a release either finds us queued and wakes us, or
                # happened before our retry, which then succeeds. No wake-up is lost.
                waiter = lot.enqueue()
                if self._inner.acquire(False):
                    lot.dequeue(waiter, pass_on=False)
                    break
                left = _remaining(end)
                if left is not None and left <= 0:
                    lot.dequeue(waiter, pass_on=False)
                    return False
                state = current_state()
                if left is None:
                    try:
                        _enter_wait_graph(self, state)  # raises DeadlockError on a cycle
                    except DeadlockError:
                        lot.dequeue(waiter, pass_on=False)
                        raise
                try:
                    lot.wait(waiter, mutex, left, (self, "acquire"), cancel=cancel)
                finally:
                    state.waiting_lock = None
        self._owner = _get_ident()
        return True

    def release(self) -> None:
        self._owner = None
        try:
            self._inner.release()
        except RuntimeError:  # it was not held, so there was no owner to restore
            raise RuntimeError(f"release of unlocked {self._describe()}") from None
        if _debug_on and self._name is not None:
            held = _debug.held_list()
            if held and held[-1] == self._name:
                held.pop()  # the usual last-in, first-out release
            else:
                _debug.released(self._name)
        if self._waiters:  # a racy read is fine: see the comment in _acquire_slow
            with self._mutex:
                self._lot.unpark_one()

    def locked(self) -> bool:
        return self._inner.locked()

    @property
    def owner(self) -> int | None:
        """Ident of the thread holding the lock, or None."""
        return self._owner

    # `with lock:` is the hot path: the fast cases of acquire() and release() are inlined here
    # (one Python call each instead of two).
    def __enter__(self) -> bool:
        if _debug_on and self._name is not None:
            return self._acquire_debug(True, None)
        if self._inner.acquire(False):
            self._owner = _get_ident()
            return True
        return self._acquire_slow(None, "raise")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._owner is None or (_debug_on and self._name is not None):
            self.release()  # the checked path: errors and debug bookkeeping
            return
        self._owner = None
        self._inner.release()
        if self._waiters:
            with self._mutex:
                self._lot.unpark_one()

    # Condition support: a plain lock is released once and re-taken without cancellation.
    def _release_save(self) -> object:
        self.release()
        return None

    def _acquire_restore(self, saved: object) -> None:
        if not self._inner.acquire(False):
            self._acquire_slow(None, "ignore")
        self._owner = _get_ident()
        if _debug_on and self._name is not None:
            _debug.acquired(self._name)  # release_save forgot it; the thread holds it again

    def _is_owned(self) -> bool:
        return self._owner == _get_ident()

    def _describe(self) -> str:
        return _label(type(self).__name__, self._name)

    def _describe_wait(self, verb: str) -> str:
        owner = self._owner
        held = f" held by {thread_name(owner)}" if owner is not None else ""
        return f"{type(self).__name__}.{verb} on {self._describe()}{held}"

    def __repr__(self) -> str:
        status = f"locked by {thread_name(self._owner)}" if self.locked() else "unlocked"
        return f"<threadwise.{self._describe()} {status}>"


class RLock(_WithAcquireRelease, Lock):
    """A re-entrant lock: the holding thread may acquire it again; release as often."""

    __slots__ = ("_count",)

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name)
        self._count = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._owner == _get_ident():
            if timeout != -1:  # same checks as a first acquire
                if not blocking:
                    raise ValueError("can't specify a timeout for a non-blocking acquire")
                check_timeout(timeout)
            self._count += 1
            return True
        if super().acquire(blocking, timeout):
            self._count = 1
            return True
        return False

    def release(self) -> None:
        if self._owner != _get_ident():
            raise RuntimeError(f"cannot release un-acquired {self._describe()}")
        self._count -= 1
        if self._count == 0:
            super().release()

    def _release_save(self) -> object:
        if self._owner != _get_ident():
            raise RuntimeError(f"cannot release un-acquired {self._describe()}")
        count = self._count
        self._count = 1
        self.release()
        return count

    def _acquire_restore(self, saved: object) -> None:
        super()._acquire_restore(None)
        assert isinstance(saved, int)
        self._count = saved


class Condition:
    """A condition variable over a threadwise ``Lock``/``RLock`` (an ``RLock`` by default)."""

    __slots__ = ("_lock", "_name", "_waiters")

    def __init__(self, lock: Lock | None = None, name: str | None = None) -> None:
        if lock is None:
            lock = RLock(name)
        elif not isinstance(lock, Lock):
            raise TypeError(
                f"lock must be a threadwise Lock or RLock (so waits stay cancellable), got {lock!r}"
            )
        self._lock = lock
        self._name = check_name(name)
        self._waiters: deque[Waiter] = deque()  # guarded by self._lock

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock.release()

    def wait(self, timeout: float | None = None) -> bool:
        """Release the lock, wait for a notify (True) or the timeout (False), re-take the lock."""
        seconds = check_timeout(timeout)
        if not self._lock._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        waiter = Waiter()
        self._waiters.append(waiter)
        saved = self._lock._release_save()
        woken = False
        try:
            woken = block(waiter, seconds, (self, "wait"))
        finally:
            # Re-taking the lock must not be interrupted: the caller's `with` expects to hold it.
            self._lock._acquire_restore(saved)
            if not waiter.notified:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass
            elif not woken:
                self.notify()  # we were notified but are leaving: pass it on
        return woken

    def wait_for(self, predicate: Callable[[], T], timeout: float | None = None) -> T:
        end = _end_of(check_timeout(timeout))
        result = predicate()
        while not result:
            left = _remaining(end)
            if left is not None and left <= 0:
                break
            self.wait(left)
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        if not self._lock._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        while n > 0 and self._waiters:
            waiter = self._waiters.popleft()
            waiter.notified = True
            waiter.wake()
            n -= 1

    def notify_all(self) -> None:
        self.notify(len(self._waiters))

    def _describe_wait(self, verb: str) -> str:
        return f"Condition.{verb} on {_label('Condition', self._name)}"


class Semaphore(_WithAcquireRelease):
    """A counter of available slots; ``acquire`` waits (cancellably) for a free one."""

    __slots__ = ("_lot", "_mutex", "_name", "_value")

    def __init__(self, value: int = 1, name: str | None = None) -> None:
        self._value = check_non_negative_int(value, "value")
        self._name = check_name(name)
        self._mutex = threading.Lock()
        self._lot = ParkingLot()

    @property
    def value(self) -> int:
        return self._value

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        if not blocking and timeout is not None:
            raise ValueError("can't specify a timeout for a non-blocking acquire")
        end = _end_of(check_timeout(timeout))
        with self._mutex:
            while self._value == 0:
                left = _remaining(end)
                if not blocking or (left is not None and left <= 0):
                    return False
                self._lot.park(self._mutex, left, (self, "acquire"))
            self._value -= 1
            return True

    def release(self, n: int = 1) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an int >= 1, got {n!r}")
        with self._mutex:
            self._value += n
            for _ in range(n):
                if not self._lot.unpark_one():
                    break

    def _describe_wait(self, verb: str) -> str:
        return f"Semaphore.{verb} on {_label('Semaphore', self._name)} (value {self._value})"


class Event:
    """A flag threads can wait for; ``wait`` is cancellable."""

    __slots__ = ("_flag", "_lot", "_mutex", "_name")

    def __init__(self, name: str | None = None) -> None:
        self._name = check_name(name)
        self._flag = False
        self._mutex = threading.Lock()
        self._lot = ParkingLot()

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        with self._mutex:
            self._flag = True
            self._lot.unpark_all()

    def clear(self) -> None:
        with self._mutex:
            self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        seconds = check_timeout(timeout)
        if self._flag:
            return True
        return self._wait(seconds, "raise")

    def _wait(self, timeout: float | None, cancel: CancelMode) -> bool:
        end = _end_of(timeout)
        with self._mutex:
            while not self._flag:
                left = _remaining(end)
                if left is not None and left <= 0:
                    break
                self._lot.park(self._mutex, left, (self, "wait"), cancel=cancel)
            return self._flag

    def _describe_wait(self, verb: str) -> str:
        return f"Event.{verb} on {_label('Event', self._name)}"


class Queue(Generic[T]):
    """A FIFO queue with cancellable ``put``/``get`` and ``close()`` instead of sentinels.

    After ``close()``, ``put`` raises ``QueueClosed``; consumers still receive every item
    already queued, then ``get`` raises ``QueueClosed`` and iteration stops.
    """

    __slots__ = ("_closed", "_items", "_maxsize", "_mutex", "_name", "_not_empty", "_not_full")

    def __init__(self, maxsize: int = 0, name: str | None = None) -> None:
        self._maxsize = check_non_negative_int(maxsize, "maxsize", " (0 for unbounded)")
        self._name = check_name(name)
        self._items: deque[T] = deque()
        self._closed = False
        self._mutex = threading.Lock()
        self._not_empty = ParkingLot()
        self._not_full = ParkingLot()

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @property
    def closed(self) -> bool:
        return self._closed

    def qsize(self) -> int:
        """Approximate number of items (another thread may change it at once)."""
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self._maxsize <= len(self._items)

    def put(self, item: T, block: bool = True, timeout: float | None = None) -> None:
        end = _end_of(check_timeout(timeout))
        with self._mutex:
            if self._closed:
                raise QueueClosed(f"put() on closed {self._describe()}")
            if self._maxsize > 0:
                while len(self._items) >= self._maxsize:
                    left = _remaining(end)
                    if not block or (left is not None and left <= 0):
                        raise _stdlib_queue.Full
                    self._not_full.park(self._mutex, left, (self, "put"))
                    if self._closed:
                        raise QueueClosed(f"{self._describe()} was closed while put() waited")
            self._items.append(item)
            self._not_empty.unpark_one()

    def put_nowait(self, item: T) -> None:
        self.put(item, block=False)

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        end = _end_of(check_timeout(timeout))
        with self._mutex:
            while not self._items:
                if self._closed:
                    raise QueueClosed(f"get() on closed and empty {self._describe()}")
                left = _remaining(end)
                if not block or (left is not None and left <= 0):
                    raise _stdlib_queue.Empty
                self._not_empty.park(self._mutex, left, (self, "get"))
            item = self._items.popleft()
            self._not_full.unpark_one()
            return item

    def get_nowait(self) -> T:
        return self.get(block=False)

    def close(self) -> None:
        """No more puts; consumers drain what is queued, then stop. Idempotent."""
        with self._mutex:
            self._closed = True
            self._not_empty.unpark_all()
            self._not_full.unpark_all()

    def __iter__(self) -> Iterator[T]:
        while True:
            try:
                yield self.get()
            except QueueClosed:
                return

    def _describe(self) -> str:
        return _label("Queue", self._name)

    def _describe_wait(self, verb: str) -> str:
        return f"Queue.{verb} on {self._name!r}" if self._name else f"Queue.{verb}"

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<threadwise.{self._describe()} {state} size={len(self._items)}>"
