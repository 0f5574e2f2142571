"""Per-thread bookkeeping: which cancel scope and task a thread runs, and what it waits on.

Every thread that touches threadwise gets one ``ThreadState``. Its owner thread writes it;
other threads only read it (for introspection), so no lock is needed on the fields.
"""

from __future__ import annotations

import threading
import time
import weakref

from ._typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._cancel import CancelScope
    from ._task import Task


class Waitable(Protocol):
    """Anything a thread can block on; it describes the wait for humans."""

    def _describe_wait(self, verb: str) -> str: ...


class ThreadState:
    __slots__ = ("blocked_on", "ident", "scope", "since", "task", "thread", "waiting_lock")

    def __init__(self, thread: threading.Thread) -> None:
        self.thread = thread
        self.ident = thread.ident
        self.scope: CancelScope | None = None
        self.task: Task[Any] | None = None
        # (primitive, verb) while blocked; rendered lazily so a lock's holder is current.
        self.blocked_on: tuple[Waitable, str] | None = None
        self.since = time.monotonic()
        # The threadwise lock this thread is parked on, for deadlock detection.
        self.waiting_lock: Any = None

    def describe_blocked_on(self) -> str | None:
        blocked = self.blocked_on
        if blocked is None:
            return None
        primitive, verb = blocked
        return primitive._describe_wait(verb)


class _Sentinel:
    """Lives in the thread's local storage; its death tells us the thread has ended."""

    __slots__ = ("__weakref__",)


_local = threading.local()
_registry: dict[int, ThreadState] = {}
_registry_lock = threading.Lock()


def current_state() -> ThreadState:
    try:
        state: ThreadState = _local.state
    except AttributeError:
        return _new_state()
    return state


def _new_state() -> ThreadState:
    state = ThreadState(threading.current_thread())
    ident = threading.get_ident()
    _local.state = state
    sentinel = _Sentinel()
    _local.sentinel = sentinel
    # CPython clears a thread's local storage when the thread ends, which kills the sentinel.
    weakref.finalize(sentinel, _forget, ident, state).atexit = False
    with _registry_lock:
        _registry[ident] = state
    return state


def _forget(ident: int, state: ThreadState) -> None:
    with _registry_lock:
        if _registry.get(ident) is state:
            del _registry[ident]


def _after_fork() -> None:
    """In a forked child only the forking thread exists: forget the others, and make a new
    lock (another thread may have held the old one at the instant of the fork)."""
    global _registry_lock
    _registry_lock = threading.Lock()
    ident = threading.get_ident()
    mine = _registry.get(ident)
    _registry.clear()
    if mine is not None:
        mine.ident = ident
        _registry[ident] = mine


def all_states() -> dict[int, ThreadState]:
    with _registry_lock:
        return dict(_registry)


def thread_name(ident: int | None) -> str:
    if ident is None:
        return "nobody"
    for thread in threading.enumerate():
        if thread.ident == ident:
            return thread.name
    return f"thread {ident}"
