"""The worker-thread cache under ``spawn``, ``TaskGroup`` and ``Executor``.

Starting an OS thread costs tens of microseconds; many short-lived groups and executors pay
it again and again. Instead, a finished job leaves its thread parked in this cache, and the
next job reuses it:

* idle workers are reused newest first, so a steady load keeps a few warm threads busy and
  the others reach their idle timeout and retire;
* a worker retires after ``idle_timeout`` seconds without work (``IDLE_TIMEOUT``, 2 s at
  most), so a program that has finished its work is back to its baseline thread count soon;
* a worker is marked idle *before* it delivers its job's result, so a caller that submits
  the next job as soon as it sees the result finds the same thread waiting for it, instead
  of starting a new one.

Idle workers are daemon threads parked on a lock, and say so in ``tw.threads()``
(blocked on "idle in the thread cache").
"""

from __future__ import annotations

import itertools
import os
import threading
import weakref
from collections.abc import Callable

from . import _ki
from ._local import close_thread_locals
from ._state import current_state
from ._typing import Any, Protocol, TypeVar

T = TypeVar("T")

IDLE_TIMEOUT = 2.0
_counter = itertools.count(1)


class _Idle:
    """What an idle worker is blocked on, for ``tw.threads()``."""

    __slots__ = ()

    def _describe_wait(self, verb: str) -> str:
        return verb


IDLE = _Idle()
_IDLE_WAIT = (IDLE, "idle in the thread cache")


_current = threading.local()  # .worker: the _Worker running in this thread


class _Worker:
    __slots__ = ("__weakref__", "_cache", "_job", "_retire", "_wake", "thread")

    def __init__(self, cache: ThreadCache) -> None:
        self._cache = cache
        self._retire = False  # set by the job: end the thread after it instead of idling
        self._job: tuple[Callable[[], Any], Callable[[Any], object] | None, str | None] | None
        self._job = None
        # Held while the worker has nothing to do; released by the thread handing it a job.
        self._wake = threading.Lock()
        self._wake.acquire()
        self.thread = threading.Thread(
            target=self._work, name=f"threadwise-worker-{next(_counter)}", daemon=True
        )

    def _work(self) -> None:
        cache = self._cache
        state = current_state()
        thread = self.thread
        idle_name = f"threadwise-idle-{next(_counter)}"
        _current.worker = self
        try:
            while True:
                job = self._job
                assert job is not None
                self._job = None
                fn, deliver, name = job
                if name is not None:
                    # Named here, not by the caller: this thread may still be renaming
                    # itself idle after delivering its previous job.
                    thread.name = name
                try:
                    result = fn()
                except BaseException as exc:  # jobs catch their own; this is a last resort
                    self._report(exc)
                    result = None
                # Idle before delivering: whoever reacts to the result and hands out the next
                # job finds this thread ready (trio's thread cache does the same).
                retire = self._retire
                if not retire:
                    with cache._lock:
                        cache._idle[self] = None
                if deliver is not None:
                    try:
                        deliver(result)
                    except BaseException as exc:
                        self._report(exc)
                if retire:
                    return
                del job, fn, deliver, result  # an idle thread keeps nothing of its last job alive
                state.blocked_on = _IDLE_WAIT
                thread.name = idle_name  # not the name of a job that has ended
                if not self._wake.acquire(timeout=cache.idle_timeout):
                    with cache._lock:
                        retire = self in cache._idle
                        if retire:
                            del cache._idle[self]
                    if retire:
                        return
                    # A caller took us off the idle list just as the timeout expired: its job
                    # is on the way.
                    self._wake.acquire()
                state.blocked_on = None
        finally:
            state.blocked_on = None
            close_thread_locals()

    def _report(self, exc: BaseException) -> None:
        args = threading.ExceptHookArgs((type(exc), exc, exc.__traceback__, self.thread))
        try:
            threading.excepthook(args)
        finally:
            del args


class ThreadCache:
    """Idle worker threads, handed one job at a time."""

    def __init__(self, idle_timeout: float = IDLE_TIMEOUT) -> None:
        self.idle_timeout = idle_timeout
        self._lock = threading.Lock()
        # Insertion ordered: popitem() gives the worker that went idle last (newest first).
        self._idle: dict[_Worker, None] = {}

    def start_thread_soon(
        self,
        fn: Callable[[], T],
        deliver: Callable[[T], object] | None = None,
        *,
        name: str | None = None,
    ) -> threading.Thread:
        """Run ``fn()`` in an idle worker (or a new one); then ``deliver(fn())`` in that thread,
        after the worker has been marked idle. Returns the thread running it."""
        with self._lock:
            try:
                worker, _ = self._idle.popitem()
            except KeyError:
                worker = None
        if worker is None:
            worker = _Worker(self)
            worker._job = (fn, deliver, name)
            worker.thread.start()
            return worker.thread
        worker._job = (fn, deliver, name)
        worker._wake.release()
        return worker.thread

    def idle_threads(self) -> set[threading.Thread]:
        """The threads parked in the cache right now."""
        with self._lock:
            return {worker.thread for worker in self._idle}

    def is_idle(self, thread: threading.Thread) -> bool:
        with self._lock:
            return any(worker.thread is thread for worker in self._idle)

    def _reset_after_fork(self) -> None:
        # Only the forking thread survives in the child: the idle workers are gone.
        self._lock = threading.Lock()
        self._idle = {}


class Job(threading.Thread):
    """``fn()`` run on a cached worker, seen as a thread of its own that ends with ``fn``.

    ``start()`` hands ``fn`` to an idle worker (or a new one); ``join()`` returns (and
    ``is_alive()`` turns False) once ``fn`` has returned and the worker is idle again;
    ``ident``, ``native_id`` are the worker's, ``name`` is the job's (the worker carries it
    while it runs ``fn``). Code that keeps a task's thread and joins it at the end (a group,
    ``Task.join``) so works unchanged, while the OS thread goes back to the cache. Nothing
    else of ``Thread`` is supported.
    """

    def __init__(self, fn: Callable[[], object], *, name: str) -> None:
        # No Thread.__init__: none of its state is used, and it costs an Event and more.
        self._job_fn: Callable[[], object] | None = fn
        self._job_name = name
        self._done = threading.Lock()
        self._done.acquire()
        self._worker: threading.Thread | None = None

    def start(self) -> None:
        fn, self._job_fn = self._job_fn, None
        if fn is None:
            raise RuntimeError("threads can only be started once")
        self._worker = cache.start_thread_soon(fn, self._finished, name=self._job_name)

    def _finished(self, _: object = None) -> None:
        self._done.release()

    def join(self, timeout: float | None = None) -> None:
        if self._worker is threading.current_thread() and self._done.locked():
            return  # joined from inside the job: it cannot end while we wait for it
        if self._done.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            self._done.release()

    def is_alive(self) -> bool:
        return self._worker is not None and self._done.locked()

    @property
    def ident(self) -> int | None:
        return None if self._worker is None else self._worker.ident

    @property
    def native_id(self) -> int | None:
        return None if self._worker is None else self._worker.native_id

    @property
    def name(self) -> str:  # type: ignore[override]
        return self._job_name

    @property
    def daemon(self) -> bool:  # type: ignore[override]
        return True

    def __repr__(self) -> str:
        state = "initial" if self._worker is None else "running" if self.is_alive() else "done"
        return f"<threadwise job {self._job_name!r} on {self._worker!r}, {state}>"


# Ctrl-C defers while the main thread runs this module's bookkeeping (see _ki); joining a job
# is a wait, and stays interruptible.
_ki.unprotected(Job.join)


def start_job(fn: Callable[[], object], *, name: str) -> Job:
    """Run ``fn()`` on a cached worker thread, named ``name`` while it runs; the returned
    ``Job`` is joined like the thread of ``fn`` would be."""
    job = Job(fn, name=name)
    job.start()
    return job


cache = ThreadCache()
start_thread_soon = cache.start_thread_soon

if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=cache._reset_after_fork)


def retire_after_this_job() -> None:
    """Called by a job: its worker thread ends after the job instead of going idle."""
    worker = getattr(_current, "worker", None)
    if worker is not None:
        worker._retire = True


class IdleSource(Protocol):
    def _idle_threads(self) -> set[threading.Thread]: ...


# Holders of cache threads that keep some of them parked for a while waiting for work of
# their own (an executor's idle runners); their idle threads are idle threads too.
_idle_sources: weakref.WeakSet[IdleSource] = weakref.WeakSet()
_idle_sources_lock = threading.Lock()


def add_idle_source(source: IdleSource) -> None:
    with _idle_sources_lock:
        _idle_sources.add(source)


def idle_threads() -> set[threading.Thread]:
    """Threads parked idle in threadwise's thread cache or in an executor (they retire by
    themselves)."""
    with _idle_sources_lock:
        sources = list(_idle_sources)
    idle = cache.idle_threads()
    for source in sources:
        idle |= source._idle_threads()
    return idle


def set_idle_timeout(seconds: float) -> float:
    """Set how long idle workers wait for a job before they retire; returns the old value.

    Workers already waiting keep their current timeout for this wait.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise ValueError(f"seconds must be a positive number, got {seconds!r}")
    old = cache.idle_timeout
    cache.idle_timeout = float(seconds)
    return old
