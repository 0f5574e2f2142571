"""Cancellable, deadline-aware synchronisation primitives: drop-ins for ``threading``'s.

Each one keeps its state under a private mutex and parks waiters in a ``ParkingLot`` or a
``Condition``; every wait goes through ``_cancel.block``, so it raises ``Cancelled`` promptly
when the waiting thread's scope is cancelled and shows the thread as BLOCKED on a described
primitive. Ctrl-C never interrupts their bookkeeping half-way (see ``_ki``).
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType

from . import _debug, _ki
from ._cancel import CancelMode, Waiter, block
from ._exceptions import DeadlockError
from ._log import Logger
from ._state import ThreadState, Waitable, all_states, current_state, thread_name
from ._typing import Any, TypeVar
from ._validate import check_callable, check_name, check_non_negative_int

T = TypeVar("T")
_monotonic = time.monotonic
_get_ident = threading.get_ident
_TIMEOUT_MAX = threading.TIMEOUT_MAX
_logger = Logger("threadwise")

# The blocking wait stays interruptible by Ctrl-C (_cancel unprotects it); everything around
# it is protected.
_ki.install()


# -- timeouts: the standard library's rules, plus "inf means forever" ----------------------------


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds or None, got {value!r}")
    if isinstance(value, float) and math.isnan(value):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    if value > _TIMEOUT_MAX and value != math.inf:
        raise OverflowError(
            f"{name} is too large: {value!r} (threading.TIMEOUT_MAX is {_TIMEOUT_MAX})"
        )
    return float(value)


def wait_timeout(value: object, name: str = "timeout") -> float | None:
    """A wait's timeout as ``threading`` reads it: a negative one times out at once."""
    if value is None:
        return None
    seconds = _number(value, name)
    if seconds == math.inf:
        return None
    return max(seconds, 0.0)


def strict_timeout(value: object, name: str = "timeout") -> float | None:
    """A timeout where the standard library rejects negatives (``queue.Queue``)."""
    if value is None:
        return None
    seconds = _number(value, name)
    if seconds < 0:
        raise ValueError(f"{name} must be a non-negative number of seconds, got {value!r}")
    return None if seconds == math.inf else seconds


def _lock_timeout(blocking: bool, timeout: object) -> float | None:
    """``Lock.acquire``'s arguments as ``_thread.lock`` checks them; -1 means no limit."""
    if not blocking:
        raise ValueError(
            f"can't specify a timeout for a non-blocking acquire (timeout={timeout!r})"
        )
    seconds = _number(timeout, "timeout")
    if seconds < 0:
        raise ValueError(f"timeout must be a non-negative number or -1, got {timeout!r}")
    return None if seconds == math.inf else seconds


# Checking a timeout argument changes nothing, so a Ctrl-C landing there comes out of the call
# at once, as one just before the call would. Deferring it instead (as in the rest of this
# module) starved it in a loop of waits that seldom block, such as Event.wait on an event that
# is mostly set: the re-sent interrupt arrives when the main thread lets go of the GIL, at a
# forced switch in the middle of the primitive, lands in protected code again, and under a
# tracer (coverage) on a loaded machine that went on for seconds. Most of those landings were
# in these checks.
for _check in (_number, wait_timeout, strict_timeout, _lock_timeout):
    _ki.unprotected(_check)
del _check


def _remaining(end: float | None) -> float | None:
    return None if end is None else end - _monotonic()


def _end_of(timeout: float | None) -> float | None:
    return None if timeout is None else _monotonic() + timeout


def _label(kind: str, name: str | None) -> str:
    return f"{kind} {name!r}" if name else kind


def _named(name: str | None) -> str:
    return f" {name!r}" if name else ""


# -- parking -----------------------------------------------------------------------------------


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
        waiter = Waiter()  # self.enqueue(), inlined
        self._waiters.append(waiter)
        return self.wait(waiter, mutex, timeout, blocked_on, cancel=cancel)

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


# -- deadlock detection --------------------------------------------------------------------------

# Guards the wait-for graph (who waits for which lock): checking for a cycle and adding our
# own edge happen under it together, so two threads closing a cycle at once cannot both miss it.
_wait_graph_lock = threading.Lock()

# How long a wait that closes a cycle through a plain Lock lasts before it is reported.
SUSPECT_AFTER = 10.0


def _enter_wait_graph(lock: Lock, state: ThreadState) -> str | None:
    """Record that this thread waits for ``lock`` and look for a cycle of waiting threads.

    A cycle of locks that only their owner may release (RLock) can never be broken: raise
    DeadlockError. A plain Lock may be released by any thread (a hand-off), so a cycle through
    one is only *suspected*: return its description (in debug mode it raises too).
    """
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
                text = _describe_cycle(me, chain)
                if _debug_on or all(link._owner_released for _, link in chain):
                    raise DeadlockError(text)
                state.waiting_lock = lock
                return text
            seen.add(owner)
            other = states.get(owner)
            current = other.waiting_lock if other is not None else None
        state.waiting_lock = lock
    return None


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


def _stacks(idents: list[int]) -> str:
    import traceback  # only when a deadlock is reported: not worth its import time up front

    frames = sys._current_frames()
    out = []
    for ident in dict.fromkeys(idents):
        frame = frames.get(ident)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "  (ended)\n"
        out.append(f"{thread_name(ident)}:\n{stack}")
    return "".join(out)


def _warn_suspected(text: str, lock: Lock) -> None:
    idents = [_get_ident()]
    owner = lock._owner
    if owner is not None:
        idents.append(owner)
    _logger.warning(
        "possible %s (waiting for %g s). A plain Lock may be released by any thread, so this "
        "hangs only if no other thread ever releases it; use an RLock where the holder "
        "releases, or tw.debug(True) to make this an error.\n%s",
        text,
        SUSPECT_AFTER,
        _stacks(idents),
    )


# -- locks -------------------------------------------------------------------------------------


class Lock:
    """A mutual-exclusion lock whose blocking ``acquire`` is cancellable and shows its holder.

    The uncontended path is one non-blocking acquire of an inner ``threading.Lock``. Like
    ``threading.Lock`` it may be released by any thread.
    """

    __slots__ = ("__weakref__", "_inner", "_lot", "_mutex", "_name", "_owner", "_waiters")

    # Whether only the holder can release it (then a wait-for cycle is a certain deadlock).
    _owner_released = False

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
        seconds = None if timeout == -1 else _lock_timeout(blocking, timeout)
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
        # A cycle through a plain Lock is waited out for SUSPECT_AFTER seconds, then reported
        # once, then waited for without a limit: it is a hang only if nobody releases the lock.
        suspect_waited = reported = False
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
                wait_for = left
                limited = False
                scope = state.scope
                if left is None and (scope is None or scope._deadline is None):
                    # A wait that can only end by a release (or a cancel): check for a cycle.
                    try:
                        suspect = _enter_wait_graph(self, state)
                    except DeadlockError:
                        lot.dequeue(waiter, pass_on=False)
                        raise
                    if suspect is None:
                        suspect_waited = False
                    elif suspect_waited and not reported:
                        reported = True
                        _warn_suspected(suspect, self)
                    elif not reported:
                        wait_for = SUSPECT_AFTER
                        limited = True
                try:
                    woken = lot.wait(waiter, mutex, wait_for, (self, "acquire"), cancel=cancel)
                finally:
                    if state.waiting_lock is not None:
                        with _wait_graph_lock:  # graph edges change only under its lock
                            state.waiting_lock = None
                if limited and not woken:
                    suspect_waited = True
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
        """Ident of the thread that last acquired the lock while it is held, or None."""
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
            interrupted: BaseException | None = None
            while True:
                try:
                    self._acquire_slow(None, "ignore")
                    break
                except DeadlockError:
                    raise
                except BaseException as exc:
                    # Ctrl-C while parked: the caller's `with` expects to hold the lock when
                    # the exception reaches it, so take the lock first and raise after.
                    interrupted = exc
            if interrupted is not None:
                self._owner = _get_ident()
                self._restored()
                raise interrupted
        self._owner = _get_ident()
        self._restored()

    def _restored(self) -> None:
        if _debug_on and self._name is not None:
            _debug.acquired(self._name)  # release_save forgot it; the thread holds it again

    def _is_owned(self) -> bool:
        return self._owner == _get_ident()

    def _at_fork_reinit(self) -> None:
        """In a child after fork(): the lock is free and nobody waits (like threading.Lock)."""
        self._inner._at_fork_reinit()  # type: ignore[attr-defined]
        self._mutex._at_fork_reinit()  # type: ignore[attr-defined]
        self._waiters.clear()
        self._owner = None

    def _describe(self) -> str:
        return _label(type(self).__name__, self._name)

    def _describe_wait(self, verb: str) -> str:
        owner = self._owner
        held = f" held by {thread_name(owner)}" if owner is not None else ""
        return f"{type(self).__name__}.{verb} on {self._describe()}{held}"

    def _repr_details(self) -> str:
        owner = self._owner
        return f" owner={thread_name(owner)!r}" if owner is not None else ""

    def __repr__(self) -> str:
        status = "locked" if self.locked() else "unlocked"
        return (
            f"<{status} threadwise.{type(self).__name__} object{_named(self._name)}"
            f"{self._repr_details()} at {id(self):#x}>"
        )


class RLock(Lock):
    """A re-entrant lock: the holding thread may acquire it again; release as often."""

    __slots__ = ("_count",)

    _owner_released = True

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name)
        self._count = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._owner == _get_ident():
            if timeout != -1:  # same checks as a first acquire
                _lock_timeout(blocking, timeout)
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
        assert isinstance(saved, int)
        try:
            super()._acquire_restore(None)
        finally:
            if self._owner == _get_ident():
                self._count = saved

    # Not Lock's inlined fast paths: re-entry and the count need acquire()/release().
    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def _recursion_count(self) -> int:
        """How many times the calling thread holds the lock (0 if it does not)."""
        return self._count if self._owner == _get_ident() else 0

    def _at_fork_reinit(self) -> None:
        super()._at_fork_reinit()
        self._count = 0

    def _repr_details(self) -> str:
        return f"{super()._repr_details()} count={self._count}"


# -- condition -----------------------------------------------------------------------------------


class Condition:
    """A condition variable over a lock (a threadwise ``RLock`` by default).

    Any lock works, as with ``threading.Condition``; over a threadwise ``Lock``/``RLock`` the
    lock is also re-taken without blocking Ctrl-C half-way.
    """

    __slots__ = ("__weakref__", "_lock", "_name", "_waiters", "acquire", "release")

    def __init__(self, lock: Any = None, name: str | None = None) -> None:
        if lock is None:
            lock = RLock(name)
        elif not (
            callable(getattr(lock, "acquire", None)) and callable(getattr(lock, "release", None))
        ):
            raise TypeError(f"lock must be a lock (with acquire() and release()), got {lock!r}")
        self._lock = lock
        self._name = check_name(name)
        self._waiters: deque[Waiter] = deque()  # guarded by self._lock
        self.acquire: Callable[..., bool] = lock.acquire
        self.release: Callable[[], None] = lock.release

    def __enter__(self) -> bool:
        entered: bool = self._lock.__enter__()
        return entered

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock.__exit__(exc_type, exc, tb)

    # The lock's protocol, as threading.Condition exports it (foreign locks get fallbacks).
    def _release_save(self) -> object:
        lock = self._lock
        if hasattr(lock, "_release_save"):
            return lock._release_save()
        lock.release()
        return None

    def _acquire_restore(self, saved: object) -> None:
        lock = self._lock
        if hasattr(lock, "_acquire_restore"):
            lock._acquire_restore(saved)
        else:
            lock.acquire()

    def _is_owned(self) -> bool:
        lock = self._lock
        if hasattr(lock, "_is_owned"):
            owned: bool = lock._is_owned()
            return owned
        # The standard library's probe for a lock that cannot say: free means not ours.
        if lock.acquire(False):
            lock.release()
            return False
        return True

    def _at_fork_reinit(self) -> None:
        self._lock._at_fork_reinit()
        self._waiters.clear()

    def wait(self, timeout: float | None = None) -> bool:
        """Release the lock, wait for a notify (True) or the timeout (False), re-take the lock."""
        seconds = wait_timeout(timeout)
        if not self._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        return self._wait(seconds, (self, "wait"))

    def _wait(
        self,
        seconds: float | None,
        blocked_on: tuple[Waitable, str],
        cancel: CancelMode = "raise",
    ) -> bool:
        """``wait`` without the checks, for primitives built on this condition."""
        waiter = Waiter()
        self._waiters.append(waiter)
        saved = self._release_save()
        completed = False
        try:
            block(waiter, seconds, blocked_on, cancel=cancel)
            completed = True
        finally:
            # Re-taking the lock must not be interrupted: the caller's `with` expects to hold it.
            try:
                self._acquire_restore(saved)
            finally:
                if not waiter.notified:
                    try:
                        self._waiters.remove(waiter)
                    except ValueError:
                        pass
                elif not completed:
                    self._notify(1)  # we were notified but leave with an exception: pass it on
        return waiter.notified

    def wait_for(self, predicate: Callable[[], T], timeout: float | None = None) -> T:
        end = _end_of(wait_timeout(timeout))
        result = predicate()
        while not result:
            left = _remaining(end)
            if left is not None and left <= 0:
                break
            self.wait(left)
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"n must be an int (how many waiters to wake), got {n!r}")
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        self._notify(n)

    def _notify(self, n: int) -> None:
        waiters = self._waiters
        while n > 0 and waiters:
            waiter = waiters.popleft()
            waiter.notified = True
            waiter.wake()
            n -= 1

    def notify_all(self) -> None:
        self.notify(len(self._waiters))

    def _describe_wait(self, verb: str) -> str:
        return f"Condition.{verb} on {_label('Condition', self._name)}"

    def __repr__(self) -> str:
        return f"<threadwise.Condition{_named(self._name)}({self._lock!r}, {len(self._waiters)})>"


# -- semaphores ----------------------------------------------------------------------------------


class Semaphore:
    """A counter of available slots; ``acquire`` waits (cancellably) for a free one."""

    __slots__ = ("__weakref__", "_lot", "_mutex", "_name", "_value")

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
            raise ValueError(
                f"can't specify a timeout for a non-blocking acquire (timeout={timeout!r})"
            )
        end = _end_of(wait_timeout(timeout))
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
            self._add(n)

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def _add(self, n: int) -> None:
        self._value += n
        for _ in range(n):
            if not self._lot.unpark_one():
                break

    def _at_fork_reinit(self) -> None:
        self._mutex._at_fork_reinit()  # type: ignore[attr-defined]
        self._lot._waiters.clear()

    def _describe_wait(self, verb: str) -> str:
        kind = type(self).__name__
        return f"{kind}.{verb} on {_label(kind, self._name)} (value {self._value})"

    def _repr_value(self) -> str:
        return str(self._value)

    def __repr__(self) -> str:
        return (
            f"<threadwise.{type(self).__name__}{_named(self._name)} at {id(self):#x}: "
            f"value={self._repr_value()}>"
        )


class BoundedSemaphore(Semaphore):
    """A semaphore whose ``release`` raises ValueError past the initial value."""

    __slots__ = ("_initial",)

    def __init__(self, value: int = 1, name: str | None = None) -> None:
        super().__init__(value, name)
        self._initial = self._value

    def release(self, n: int = 1) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an int >= 1, got {n!r}")
        with self._mutex:
            if self._value + n > self._initial:
                raise ValueError(f"{self._describe_wait('release')}: released too many times")
            self._add(n)

    def _repr_value(self) -> str:
        return f"{self._value}/{self._initial}"


# -- event ---------------------------------------------------------------------------------------


class Event:
    """A flag threads can wait for; ``wait`` is cancellable."""

    __slots__ = ("__weakref__", "_cond", "_flag", "_name")

    def __init__(self, name: str | None = None) -> None:
        self._name = check_name(name)
        self._flag = False
        self._cond = Condition(threading.Lock())

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        cond = self._cond
        with cond._lock:
            self._flag = True
            cond._notify(len(cond._waiters))

    def clear(self) -> None:
        with self._cond._lock:
            self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        seconds = wait_timeout(timeout)
        if self._flag:
            return True
        return self._wait(seconds, "raise")

    def _wait(self, timeout: float | None, cancel: CancelMode) -> bool:
        cond = self._cond
        with cond._lock:
            if self._flag:
                return True
            # Woken by set() means True even if clear() came before we ran (as threading's).
            return cond._wait(timeout, (self, "wait"), cancel) or self._flag

    def _at_fork_reinit(self) -> None:
        self._cond._at_fork_reinit()

    def _describe_wait(self, verb: str) -> str:
        return f"Event.{verb} on {_label('Event', self._name)}"

    def __repr__(self) -> str:
        status = "set" if self._flag else "unset"
        return f"<threadwise.Event{_named(self._name)} at {id(self):#x}: {status}>"


# -- barrier -------------------------------------------------------------------------------------

_FILLING, _DRAINING, _RESETTING, _BROKEN = 0, 1, -1, -2


class Barrier:
    """``parties`` threads wait until all have arrived, then all go on (``threading.Barrier``).

    ``wait`` is cancellable; a party that leaves its wait (cancelled, Ctrl-C, timeout) breaks
    the barrier, so the others get ``threading.BrokenBarrierError`` instead of waiting forever.
    """

    __slots__ = (
        "__weakref__",
        "_action",
        "_cond",
        "_count",
        "_name",
        "_parties",
        "_state",
        "_timeout",
    )

    def __init__(
        self,
        parties: int,
        action: Callable[[], object] | None = None,
        timeout: float | None = None,
        name: str | None = None,
    ) -> None:
        if isinstance(parties, bool) or not isinstance(parties, int):
            raise TypeError(f"parties must be an int >= 1, got {parties!r}")
        if parties < 1:
            raise ValueError(f"parties must be an int >= 1, got {parties!r}")
        if action is not None:
            check_callable(action, "action")
        self._timeout = wait_timeout(timeout)
        self._name = check_name(name)
        self._parties = parties
        self._action = action
        self._cond = Condition(threading.Lock())
        self._state = _FILLING
        self._count = 0

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the other parties; returns this thread's arrival index (0 .. parties-1)."""
        seconds = self._timeout if timeout is None else wait_timeout(timeout)
        with self._cond._lock:
            self._enter()
            index = self._count
            self._count += 1
            try:
                if index + 1 == self._parties:
                    self._release()
                else:
                    self._wait(seconds)
                return index
            finally:
                self._count -= 1
                self._exit()

    def _enter(self) -> None:
        while self._state in (_DRAINING, _RESETTING):
            self._cond._wait(None, (self, "wait"))  # the previous round is still leaving
        if self._state < 0:
            raise threading.BrokenBarrierError

    def _release(self) -> None:
        try:
            if self._action is not None:
                self._action()
            self._state = _DRAINING
            self._cond._notify(len(self._cond._waiters))
        except BaseException:
            self._break()
            raise

    def _wait(self, seconds: float | None) -> None:
        end = _end_of(seconds)
        while self._state == _FILLING:
            left = _remaining(end)
            if left is not None and left <= 0:
                self._break()
                raise threading.BrokenBarrierError
            try:
                self._cond._wait(left, (self, "wait"))
            except BaseException:
                self._break()  # a party that leaves means the others can never pass
                raise
        if self._state < 0:
            raise threading.BrokenBarrierError

    def _exit(self) -> None:
        if self._count == 0 and self._state in (_RESETTING, _DRAINING):
            self._state = _FILLING
            self._cond._notify(len(self._cond._waiters))

    def _break(self) -> None:
        self._state = _BROKEN
        self._cond._notify(len(self._cond._waiters))

    def reset(self) -> None:
        """Back to the empty state; threads waiting now get BrokenBarrierError."""
        with self._cond._lock:
            if self._count > 0:
                if self._state in (_FILLING, _BROKEN):
                    self._state = _RESETTING
            else:
                self._state = _FILLING
            self._cond._notify(len(self._cond._waiters))

    def abort(self) -> None:
        """Break the barrier: current and future waits raise BrokenBarrierError until reset()."""
        with self._cond._lock:
            self._break()

    @property
    def parties(self) -> int:
        return self._parties

    @property
    def n_waiting(self) -> int:
        return self._count if self._state == _FILLING else 0

    @property
    def broken(self) -> bool:
        return self._state == _BROKEN

    def _describe_wait(self, verb: str) -> str:
        return (
            f"Barrier.{verb} on {_label('Barrier', self._name)} "
            f"({self.n_waiting}/{self._parties} waiting)"
        )

    def __repr__(self) -> str:
        head = f"<threadwise.Barrier{_named(self._name)} at {id(self):#x}"
        if self.broken:
            return f"{head}: broken>"
        return f"{head}: waiters={self.n_waiting}/{self._parties}>"


# Queue lives in its own module; importable from here as before.
from ._queue import LifoQueue, PriorityQueue, Queue  # noqa: E402

__all__ = [
    "Barrier",
    "BoundedSemaphore",
    "Condition",
    "Event",
    "LifoQueue",
    "Lock",
    "ParkingLot",
    "PriorityQueue",
    "Queue",
    "RLock",
    "Semaphore",
]
