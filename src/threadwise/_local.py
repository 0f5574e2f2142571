"""Per-thread resources that are closed when their thread ends."""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from ._validate import check_callable

T = TypeVar("T")
logger = logging.getLogger("threadwise")

# Every ThreadLocal, so threadwise's own threads can close their instances on the way out.
_all_locals: weakref.WeakSet[ThreadLocal[Any]] = weakref.WeakSet()


def close_thread_locals() -> None:
    """Close the calling thread's instances of every ThreadLocal.

    threadwise's threads call this as their last step. Closing then, rather than from the
    interpreter's teardown of the thread, means a ``close`` that logs or looks at
    ``threading.current_thread()`` sees a normal thread (not a leftover dummy one).
    """
    for local in list(_all_locals):
        local._close_mine()


class _Holder(Generic[T]):
    """Lives in the thread's local storage beside the instance; dies with the thread."""

    __slots__ = ("__weakref__", "value")

    def __init__(self, value: T) -> None:
        self.value = value


class ThreadLocal(Generic[T]):
    """One instance per thread, made by ``factory`` on first ``get()``.

    ``close(instance)`` runs exactly once per instance: when its thread ends (a worker of a
    pool or pipeline shutting down, a task's thread exiting), when ``close_all()`` is called,
    or at interpreter exit for threads still alive then.
    """

    def __init__(
        self, factory: Callable[[], T], close: Callable[[T], object] | None = None
    ) -> None:
        check_callable(factory, "factory")
        if close is not None:
            check_callable(close, "close")
        self._factory = factory
        self._close = close
        self._local = threading.local()
        self._lock = threading.Lock()
        # One finalizer per live instance; each runs at most once (weakref.finalize's promise).
        self._finalizers: dict[int, weakref.finalize[..., _Holder[T]]] = {}
        self._next_key = 0
        _all_locals.add(self)

    def get(self) -> T:
        """This thread's instance, created on first use."""
        try:
            holder: _Holder[T] = self._local.holder
        except AttributeError:
            return self._create()
        return holder.value

    def _create(self) -> T:
        value = self._factory()
        holder = _Holder(value)
        self._local.holder = holder
        with self._lock:
            key = self._next_key
            self._next_key += 1
            # The holder is collected when the thread's local storage is cleared at thread
            # exit; the finalizer then closes the instance it kept a reference to.
            self._finalizers[key] = weakref.finalize(holder, self._finalize, key, value)
        self._local.key = key
        return value

    def _close_mine(self) -> None:
        try:
            key = self._local.key
        except AttributeError:
            return
        with self._lock:
            finalizer = self._finalizers.get(key)
        if finalizer is not None:
            finalizer()  # runs the close once; later calls do nothing
        del self._local.key
        del self._local.holder

    def _finalize(self, key: int, value: T) -> None:
        with self._lock:
            self._finalizers.pop(key, None)
        if self._close is None:
            return
        try:
            self._close(value)
        except Exception:
            logger.exception("ThreadLocal close() failed for %r", value)

    def close_all(self) -> None:
        """Close every instance now (the threads get a new one if they call ``get()`` again)."""
        with self._lock:
            finalizers = list(self._finalizers.values())
        for finalizer in finalizers:
            finalizer()
        self._local = threading.local()

    def __len__(self) -> int:
        """How many instances are open."""
        with self._lock:
            return len(self._finalizers)
