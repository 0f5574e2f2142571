"""The worker-thread cache under ``spawn``, ``TaskGroup`` and ``Executor``.

Starting an OS thread costs tens of microseconds; many short-lived groups and executors pay
it again and again. Instead, a finished job leaves its thread parked in this cache, and the
next job reuses it:

* jobs go to one queue; a worker that finishes a job takes the next queued one before it
  parks, so a burst of short jobs costs few thread wake-ups, and a job never waits behind
  another one (see ``ThreadCache``);
* idle workers are woken newest first, so a steady load keeps a few warm threads busy and
  the others reach their idle timeout and retire;
* a worker retires after ``idle_timeout`` seconds without work (``IDLE_TIMEOUT``, 2 s at
  most), so a program that has finished its work is back to its baseline thread count soon;
* a worker counts as on its way to the queue *before* it delivers its job's result, so a
  caller that queues the next job as soon as it sees the result finds that thread coming
  for it, instead of starting a new one.

Idle workers are daemon threads parked on a lock of their own, and say so in
``tw.threads()`` (blocked on "idle in the thread cache").
"""

from __future__ import annotations

import _thread
import itertools
import os
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable

from . import _ki
from ._local import close_thread_locals
from ._log import Logger
from ._state import current_state
from ._typing import Any, Protocol, TypeVar

_logger = Logger("threadwise")

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

_Job = tuple[Callable[[], Any], Callable[[Any], object] | None, str | None]


class _WorkerThread(threading.Thread):
    _name: str  # what the ``name`` property of threading.Thread reads


# Renaming a worker per job: before Python 3.14 the ``name`` setter only stores ``_name``
# (str() of it), a Python call per job saved by storing it directly. From 3.14 on the setter
# also renames the OS thread: it is called.
_PLAIN_NAME = sys.version_info < (3, 14)


class _Worker:
    __slots__ = ("__weakref__", "_retire", "_wake", "thread")

    def __init__(self, cache: ThreadCache) -> None:
        self._retire = False  # set by the job: end the thread after it instead of idling
        # Held while the worker is parked idle; released by the thread that wakes it.
        self._wake = threading.Lock()
        self._wake.acquire()
        self.thread = _WorkerThread(
            target=cache._work,
            args=(self,),
            name=f"threadwise-worker-{next(_counter)}",
            daemon=True,
        )


class ThreadCache:
    """Worker threads taking jobs from one queue; idle ones parked, each on its own lock.

    A job never waits behind another job: whenever jobs are queued, at least one worker is
    on its way to the queue without depending on any job finishing (``_looking`` counts
    them: woken or new workers, and workers between two jobs). A worker that takes a job
    and leaves others queued makes sure of that before it runs its job, by waking another
    idle worker (newest first) or starting one. So a burst of short jobs is run by the
    workers already awake, one after the other, instead of waking one thread per job (each
    wake-up is a context switch and a hand-over of the GIL), while a job that blocks never
    holds up the ones queued after it.
    """

    def __init__(self, idle_timeout: float = IDLE_TIMEOUT) -> None:
        self.idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._jobs: deque[_Job] = deque()
        # Insertion ordered: popitem() gives the worker that went idle last (newest first).
        self._idle: dict[_Worker, None] = {}
        self._looking = 0
        # Workers not running a job: parked, or on their way to the queue or to park.
        self._free: set[_Worker] = set()

    def start_thread_soon(
        self,
        fn: Callable[[], T],
        deliver: Callable[[T], object] | None = None,
        name: str | None = None,
        held: threading.Lock | None = None,
    ) -> None:
        """Run ``fn()`` in a worker thread, named ``name`` while it runs; then
        ``deliver(fn())`` in that thread, after the worker is ready for its next job.

        ``held``: a lock taken here, before the job is queued, for ``deliver`` to release
        (a task's job lock): taken in this module, where Ctrl-C waits (see _ki), so a held
        lock always means a job on its way. Released again if the job is dropped.

        Raises ``RuntimeError`` if no thread could take the job (a new thread could not be
        started): the job is then dropped, never to run.
        """
        if held is not None:
            held.acquire()
        job: _Job = (fn, deliver, name)
        lock = self._lock
        # Not `with`: a `with` makes two bound methods and parses arguments, half again as
        # much as the lock round trip itself (Ctrl-C waits while this module runs: see _ki).
        lock.acquire()
        try:
            self._jobs.append(job)
            if self._looking:
                return  # a worker is on its way to the queue
            self._looking = 1
            try:
                worker, _ = self._idle.popitem()
            except KeyError:
                worker = None
        finally:
            lock.release()
        if worker is not None:
            worker._wake.release()
            return
        started, error = self._start_worker()
        try:
            if not started:
                with self._lock:
                    try:
                        self._jobs.remove(job)
                    except ValueError:  # pragma: no cover - a worker took it: it runs
                        started = True
                if not started and held is not None:
                    held.release()
            if error is not None:
                raise error  # Ctrl-C is never lost; the job runs if a thread was started
        finally:
            del error
        if not started:  # pragma: no cover - start failures are RuntimeErrors
            raise RuntimeError("can't start new thread")

    def _start_worker(self) -> tuple[bool, BaseException | None]:
        """Start a worker already counted in ``_looking``: (whether it started, the error
        to raise). If it did not start the count is taken back. Ctrl-C can land inside
        ``Thread.start`` (the standard library's code, which threadwise does not shield):
        the thread may be running all the same, and then it keeps its count."""
        thread: threading.Thread | None = None
        try:
            thread = _Worker(self).thread
            thread.start()
        except BaseException as exc:
            started = thread is not None and not isinstance(exc, RuntimeError)
            if started:
                assert thread is not None
                started = _started_anyway(thread)
            if not started:
                with self._lock:
                    self._looking -= 1
            return started, exc
        return True, None

    def _wake_another(self) -> None:
        """Called by a worker with ``_looking`` raised for the worker it now provides."""
        with self._lock:
            try:
                worker, _ = self._idle.popitem()
            except KeyError:
                worker = None
        if worker is not None:
            worker._wake.release()
            return
        _, error = self._start_worker()
        if error is not None:
            # Without a new worker the queued jobs wait for a worker to finish its job. A
            # thread that cannot start (resource exhaustion) is no job's error: say so in the
            # log, not through threading.excepthook as if this worker had crashed.
            if isinstance(error, RuntimeError):
                _logger.warning("could not start another worker thread: %s", error)
            else:
                _report(error, threading.current_thread())
            del error

    def _work(self, worker: _Worker) -> None:
        lock = self._lock
        jobs = self._jobs
        idle = self._idle
        free = self._free
        state = current_state()
        thread = worker.thread
        idle_name = f"threadwise-idle-{next(_counter)}"
        _current.worker = worker
        try:
            lock.acquire()
            free.add(worker)
            # Counted in _looking by whoever woke or started this worker, or by itself
            # after a job: it takes a queued job or parks.
            while True:
                if not jobs:
                    self._looking -= 1
                    idle[worker] = None
                    lock.release()
                    # Not the name of a job that has ended.
                    if _PLAIN_NAME:
                        thread._name = idle_name
                    else:  # pragma: no cover - Python 3.14+
                        thread.name = idle_name
                    state.blocked_on = _IDLE_WAIT
                    woken = worker._wake.acquire(True, self.idle_timeout)
                    lock.acquire()
                    if not woken:
                        if worker in idle:
                            del idle[worker]
                            free.discard(worker)
                            lock.release()
                            return
                        # Taken off the idle list just as the wait ended: a wake-up is on
                        # its way, and we are counted as looking.
                        lock.release()
                        worker._wake.acquire()
                        lock.acquire()
                    state.blocked_on = None
                    continue
                fn, deliver, name = jobs.popleft()
                free.discard(worker)
                # Jobs left and nobody else looking: wake another worker for them before
                # running this job (which may block).
                more = bool(jobs) and self._looking == 1
                if not more:
                    self._looking -= 1
                lock.release()
                if more:
                    self._wake_another()
                if _PLAIN_NAME:
                    thread._name = idle_name if name is None else name
                else:  # pragma: no cover - Python 3.14+
                    thread.name = idle_name if name is None else name
                try:
                    result = fn()
                except BaseException as exc:  # jobs catch their own; this is a last resort
                    _report(exc, thread)
                    result = None
                retire = worker._retire
                if not retire:
                    # Looking before delivering: whoever reacts to the result and queues the
                    # next job finds a worker on its way instead of waking or starting one.
                    lock.acquire()
                    self._looking += 1
                    free.add(worker)
                    if deliver is release_lock:
                        # A job lock (a task's, see ``held``): released under the cache's
                        # lock, a C call that runs nobody's code; the worker keeps the lock
                        # for its next turn instead of a release and an acquire.
                        try:
                            release_lock(result)
                        except BaseException as exc:  # pragma: no cover - not held: a bug
                            lock.release()
                            _report(exc, thread)
                            lock.acquire()
                        del fn, deliver, result
                        continue
                    lock.release()
                if deliver is not None:
                    try:
                        deliver(result)
                    except BaseException as exc:
                        _report(exc, thread)
                del fn, deliver, result  # an idle thread keeps nothing of its last job alive
                if retire:
                    return
                lock.acquire()
        finally:
            state.blocked_on = None
            close_thread_locals()

    def idle_threads(self) -> set[threading.Thread]:
        """The threads of the cache running no job and about to run none: parked, or on
        their way to park (with no job queued, a worker between two jobs parks next)."""
        with self._lock:
            return {worker.thread for worker in (self._idle if self._jobs else self._free)}

    def is_idle(self, thread: threading.Thread) -> bool:
        return thread in self.idle_threads()

    def _reset_after_fork(self) -> None:
        # Only the forking thread survives in the child: the workers and their jobs are gone.
        self._lock = threading.Lock()
        self._jobs = deque()
        self._idle = {}
        self._looking = 0
        self._free = set()


def _started_anyway(thread: threading.Thread) -> bool:
    """After ``thread.start()`` was interrupted: whether the OS thread runs all the same."""
    started: threading.Event | None = getattr(thread, "_started", None)
    if started is None:  # pragma: no cover - every supported CPython has it
        return True
    if started.is_set():
        return True
    if thread not in getattr(threading, "_limbo", {}):
        return False  # start() never got as far as starting it, or undid it
    return started.wait(1.0)  # between the two: it is starting, or it never will


def _report(exc: BaseException, thread: threading.Thread) -> None:
    args = threading.ExceptHookArgs((type(exc), exc, exc.__traceback__, thread))
    try:
        threading.excepthook(args)
    finally:
        del args


class Job(threading.Thread):
    """``fn()`` run on a cached worker, seen as a thread of its own that ends with ``fn``.

    ``start()`` queues ``fn`` for the thread cache; ``join()`` returns (and ``is_alive()``
    turns False) once ``fn`` has returned and the worker is ready for another job;
    ``ident``, ``native_id`` are the worker's once it runs ``fn`` (None before), ``name`` is
    the job's (the worker carries it while it runs ``fn``). Code that keeps a task's thread
    and joins it at the end (a group, ``Task.join``) so works unchanged, while the OS thread
    goes back to the cache. Nothing else of ``Thread`` is supported.
    """

    def __init__(self, fn: Callable[[], object], *, name: str) -> None:
        # No Thread.__init__: none of its state is used, and it costs an Event and more.
        self._job_fn: Callable[[], object] | None = fn
        self._job_name = name
        self._done = threading.Lock()
        self._done.acquire()
        self._started = False
        self._worker: threading.Thread | None = None

    def start(self) -> None:
        if self._started or self._job_fn is None:
            raise RuntimeError("threads can only be started once")
        self._started = True
        try:
            cache.start_thread_soon(self._run_job, self._finished, name=self._job_name)
        except RuntimeError:  # dropped: no thread could take it (Ctrl-C leaves it queued)
            self._started = False
            raise

    def _run_job(self) -> None:
        fn, self._job_fn = self._job_fn, None
        assert fn is not None
        self._worker = _current.worker.thread
        fn()

    def _finished(self, _: object = None) -> None:
        self._done.release()

    def join(self, timeout: float | None = None) -> None:
        if self._worker is threading.current_thread() and self._done.locked():
            return  # joined from inside the job: it cannot end while we wait for it
        wait_released(self._done, timeout)

    def is_alive(self) -> bool:
        return self._started and self._done.locked()

    @property
    def ident(self) -> int | None:
        worker = self._worker
        return None if worker is None else worker.ident

    @property
    def native_id(self) -> int | None:
        worker = self._worker
        return None if worker is None else worker.native_id

    @property
    def name(self) -> str:  # type: ignore[override]
        return self._job_name

    @property
    def daemon(self) -> bool:  # type: ignore[override]
        return True

    def __repr__(self) -> str:
        state = "initial" if not self._started else "running" if self.is_alive() else "done"
        return f"<threadwise job {self._job_name!r} on {self._worker!r}, {state}>"


# The lock type's own release: as a job's ``deliver`` (with the lock its function returns),
# the worker runs it under the cache's lock (see ThreadCache._work).
release_lock: Callable[[Any], None] = _thread.LockType.release


def wait_released(done: threading.Lock, timeout: float | None) -> None:
    """Wait until ``done`` (held while a job runs) is released, or ``timeout`` passed."""
    acquire = done.acquire
    if threading.get_ident() != _ki._main_ident:
        if acquire(True, -1 if timeout is None else max(0.0, timeout)):
            done.release()
        return
    # The main thread waits in slices: a Ctrl-C taken by another thread is seen between two.
    limit = None if timeout is None else time.monotonic() + max(0.0, timeout)
    while True:
        wait_for = (
            _ki.MAIN_SLICE if limit is None else min(limit - time.monotonic(), _ki.MAIN_SLICE)
        )
        if acquire(True, max(0.0, wait_for)):
            done.release()
            return
        if limit is not None and time.monotonic() >= limit:
            return


# Ctrl-C defers while the main thread runs this module's bookkeeping (see _ki); joining a job
# is a wait, and stays interruptible.
_ki.unprotected(Job.join)
_ki.unprotected(wait_released)


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
