"""Per-thread resources that are closed when their thread ends."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

from ._log import Logger
from ._typing import Any, Generic, TypeVar
from ._validate import check_callable

T = TypeVar("T")
logger = Logger("threadwise")

# Every ThreadLocal, so threadwise's own threads can close their instances on the way out.
# ThreadLocals are made in any thread while finishing threads walk the registry. A WeakSet
# will not do: its removal callback runs in whichever thread the garbage collector happens to
# run in, checks "is anyone iterating?" and then removes, without a lock; a walk starting
# between the two raises "Set changed size during iteration". So the registry is a plain dict
# of weak references without callbacks, changed and copied only under the lock; dead
# references are purged when it has doubled in size.
_all_locals: dict[int, weakref.ref[ThreadLocal[Any]]] = {}
_all_locals_lock = threading.Lock()
_purge_at = 64


def _register(local: ThreadLocal[Any]) -> None:
    global _purge_at
    with _all_locals_lock:
        if len(_all_locals) >= _purge_at:
            for key in [key for key, ref in _all_locals.items() if ref() is None]:
                del _all_locals[key]
            _purge_at = max(64, 2 * len(_all_locals))
        # A live object's id is unique: an entry with the same id belongs to a dead one.
        _all_locals[id(local)] = weakref.ref(local)


def close_thread_locals() -> None:
    """Close the calling thread's instances of every ThreadLocal.

    threadwise's threads call this as their last step. Closing then, rather than from the
    interpreter's teardown of the thread, means a ``close`` that logs or looks at
    ``threading.current_thread()`` sees a normal thread (not a leftover dummy one).

    A close that raises does not keep the others from running: ``Exception`` is logged; any
    other exception (e.g. ``KeyboardInterrupt``) is raised again once every close has run.
    """
    # No ThreadLocal was ever made (the common case): out without the lock. An instance this
    # thread holds was made by get() on a ThreadLocal that registered itself here before this
    # thread could reach it, so an empty registry means this thread has nothing to close
    # (entries leave only when dead; one reading of the dict's size, safe without the GIL).
    if not _all_locals:
        return
    with _all_locals_lock:
        snapshot = list(_all_locals.values())
    pending: BaseException | None = None
    for ref in snapshot:
        local = ref()
        if local is None:
            continue
        try:
            local._close_mine()
        except BaseException as exc:  # one failing close must not skip the rest
            if pending is None:
                pending = exc
    if pending is not None:
        try:
            raise pending
        finally:
            pending = None  # no frame -> exception -> frame cycle


class _Holder(Generic[T]):
    """Lives in the thread's local storage beside the instance; dies with the thread."""

    __slots__ = ("__weakref__", "key", "value")

    def __init__(self, key: int, value: T) -> None:
        self.key = key
        self.value = value


class ThreadLocal(Generic[T]):
    """One instance per thread, made by ``factory`` on first ``get()``.

    ``close(instance)`` runs exactly once per instance: when its thread ends (a worker of a
    pool or pipeline shutting down, a task's thread exiting), when ``close_all()`` is called,
    or at interpreter exit for threads still alive then. ``get()`` never returns an instance
    whose closing has begun: after ``close_all()`` each thread gets a new one.
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
        # The open instances: one finalizer each, keyed by the holder's key. A key leaves
        # this dict (under the lock) before its close starts, so membership is what "open"
        # means. Each finalizer runs at most once (weakref.finalize's promise).
        self._finalizers: dict[int, weakref.finalize[..., _Holder[T]]] = {}
        self._next_key = 0
        _register(self)

    def get(self) -> T:
        """This thread's instance, created on first use (and again after ``close_all()``)."""
        holder: _Holder[T] | None = getattr(self._local, "holder", None)
        # One read of the dict decides: open now means get() is ordered before any close of
        # it; a close_all() that begins later closes an instance already handed out, as it
        # would had get() been called a moment earlier.
        if holder is not None and holder.key in self._finalizers:
            return holder.value
        return self._create()

    def _create(self) -> T:
        value = self._factory()
        with self._lock:
            key = self._next_key
            self._next_key += 1
            holder = _Holder(key, value)
            # The holder is collected when the thread's local storage is cleared at thread
            # exit; the finalizer then closes the instance it kept a reference to.
            self._finalizers[key] = weakref.finalize(holder, self._finalize, key, value)
        self._local.holder = holder  # drops a closed predecessor, whose finalizer has run
        return value

    def _close_mine(self) -> None:
        holder: _Holder[T] | None = getattr(self._local, "holder", None)
        if holder is None:
            return
        with self._lock:
            finalizer = self._finalizers.pop(holder.key, None)
        try:
            if finalizer is not None:
                finalizer()  # runs the close once; later calls do nothing
        finally:
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
        """Close every instance now (the threads get a new one if they call ``get()`` again).

        Every close runs even if one raises (``Exception`` is logged, anything else is
        raised again after the last close).
        """
        with self._lock:
            # Closed from here on: a get() racing this call makes a new instance.
            finalizers = list(self._finalizers.values())
            self._finalizers.clear()
        pending: BaseException | None = None
        for finalizer in finalizers:
            try:
                finalizer()
            except BaseException as exc:  # the others must still be closed
                if pending is None:
                    pending = exc
        if pending is not None:
            try:
                raise pending
            finally:
                pending = None

    def __len__(self) -> int:
        """How many instances are open."""
        with self._lock:
            return len(self._finalizers)
