"""Executor: a ``concurrent.futures`` executor whose cancel reaches running work.

Each submitted call runs under its own cancel scope in one of at most ``max_workers``
runners. A runner is a loop on a thread borrowed from the thread cache: it takes queued calls;
with none left it waits a while for more, then hands its thread back, so idle threads retire
by themselves.

Cancelling a running call cancels its task's scope. Python cannot stop a thread, so that
works when the call reaches a threadwise checkpoint; a call that never does runs to its end,
and its future then says so (``CancelledTooLate``) instead of pretending it was cancelled.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import functools
import itertools
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures._base import CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED, RUNNING
from concurrent.futures.thread import BrokenThreadPool
from types import TracebackType

from . import _ki, _threads
from ._cancel import CancelScope
from ._exceptions import Cancelled, CancelledTooLate
from ._state import current_state
from ._task import EXIT_GRACE, State, _exiting_on_ctrl_c
from ._typing import Any, Literal, ParamSpec, TypeVar
from ._validate import check_callable, check_name, check_timeout, describe_callable

P = ParamSpec("P")
T = TypeVar("T")

_counter = itertools.count(1)
_monotonic = time.monotonic
_allocate_lock = threading.Lock
_get_ident = threading.get_ident
_partial = functools.partial
_copy_context = contextvars.copy_context
# Enum member lookups cost a little on every call: look them up once.
_CREATED, _RUNNING, _BLOCKED = State.CREATED, State.RUNNING, State.BLOCKED
_DONE, _FAILED, _CANCELLED = State.DONE, State.FAILED, State.CANCELLED
_cf_logger = logging.getLogger("concurrent.futures")  # where the stdlib pool logs, too
logger = logging.getLogger("threadwise")


_ENDED = (CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED)


class Future(concurrent.futures.Future[T]):
    """A ``concurrent.futures.Future`` whose ``cancel()`` also reaches a running call.

    ``cancel()`` on a running call cancels its threadwise scope and returns True: a
    threadwise blocking call in it raises ``Cancelled`` and the future ends cancelled. If the
    call never reaches a checkpoint it runs to its end, and ``result()`` raises
    ``CancelledTooLate`` (with the value as ``.value``, or the exception as ``__cause__``).
    """

    # Class-level defaults, not an __init__ of our own: one Python call less per future.
    _tw_call: _Call | None = None  # set while the call runs
    _tw_cancel_requested: bool = False

    def cancel(self) -> bool:
        with self._condition:
            if self._state != RUNNING:
                call = None
            else:
                call = self._tw_call
                self._tw_cancel_requested = True
        if call is None:
            return super().cancel()
        call.cancel("its future was cancelled")
        return True

    def result(self, timeout: float | None = None) -> T:
        if self._state not in _ENDED and _get_ident() == _ki._main_ident:
            # An unlocked read: an ended future stays ended (and the stdlib's result() below
            # reads it again under the lock).
            if timeout is not None:
                timeout, finished = self._wait_in_slices(timeout)
                if finished:
                    return self._result  # type: ignore[return-value]
                return super().result(timeout)
            # No timeout, the common case: _wait_in_slices written out, one call fewer.
            condition = self._condition
            with condition:
                while self._state not in _ENDED:
                    condition.wait(_ki.MAIN_SLICE)
                if self._state == FINISHED and self._exception is None:
                    return self._result  # type: ignore[return-value]
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if self._state not in _ENDED and _get_ident() == _ki._main_ident:
            timeout, finished = self._wait_in_slices(timeout)
            if finished:
                return None
        return super().exception(timeout)

    def _wait_in_slices(self, timeout: float | None) -> tuple[float | None, bool]:
        """Wait for the end in slices (the main thread: a Ctrl-C taken by another thread is
        seen between two, see ``_ki.MAIN_SLICE``). Returns the timeout left for the stdlib's
        wait, and whether the future ended with a result (read under the lock that set it:
        the caller returns it without taking the lock once more)."""
        end = None if timeout is None else _monotonic() + timeout
        with self._condition:
            while self._state not in _ENDED:
                left = _ki.MAIN_SLICE if end is None else min(end - _monotonic(), _ki.MAIN_SLICE)
                if left <= 0:
                    return 0.0, False  # timed out: the stdlib's result() raises TimeoutError
                self._condition.wait(left)
            return timeout, self._state == FINISHED and self._exception is None

    def _tw_end_cancelled(self) -> None:
        """RUNNING -> cancelled: the call stopped at a checkpoint after a cancel."""
        with self._condition:
            self._state = CANCELLED_AND_NOTIFIED
            for waiter in self._waiters:
                waiter.add_cancelled(self)
            self._condition.notify_all()
        self._invoke_callbacks()  # type: ignore[attr-defined]


class _Call:
    """One submitted call: queued, then run by a runner under its own cancel scope.

    While it runs, the thread's state points at it the way it points at a ``Task``, so
    ``tw.threads()`` shows its name and whether it is RUNNING or BLOCKED (and on what).
    """

    __slots__ = (
        "__weakref__",
        "deadline",
        "exception",
        "executor",
        "fn",
        "future",
        "result",
        "scope",
        "state",
        "what",
    )

    group = None  # read by tw.threads(): an executor's call belongs to no TaskGroup

    def __init__(
        self,
        future: Future[Any],
        fn: Callable[[], Any],
        executor: str,
        what: object,
        deadline: float | None,
    ) -> None:
        self.future = future
        self.fn = fn
        # The name is made only when someone looks (most calls are never looked at).
        self.executor = executor
        self.what = what
        self.deadline = deadline
        self.state = _CREATED
        self.scope: CancelScope | None = None
        self.result: Any = None
        self.exception: BaseException | None = None

    @property
    def name(self) -> str:
        """``<executor name>:<function name>``."""
        what = self.what
        return f"{self.executor}:{what if isinstance(what, str) else describe_callable(what)}"  # type: ignore[arg-type]

    def _set_blocked(self, blocked: bool) -> None:  # called by threadwise's waits
        if self.state is _RUNNING or self.state is _BLOCKED:
            self.state = _BLOCKED if blocked else _RUNNING

    def cancel(self, reason: str) -> None:
        scope = self.scope
        if scope is not None:
            scope.cancel(reason)


def _default_workers() -> int:
    count = getattr(os, "process_cpu_count", os.cpu_count)()
    return min(32, (count or 1) + 4)


def _check_max_workers(value: object) -> int:
    if value is None:
        return _default_workers()
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"max_workers must be an int >= 1 or None, got {value!r}")
    if value <= 0:
        raise ValueError(f"max_workers must be greater than 0, got {value!r}")
    return value


# Executors alive now, for the interpreter-exit hook.
_executors: weakref.WeakSet[Executor] = weakref.WeakSet()
_executors_lock = threading.Lock()
_interpreter_exiting = False


def _wait_slice() -> float | None:
    """The longest single wait for this thread: the main thread waits in slices, so a Ctrl-C
    taken by another thread is seen between two (see ``_ki.MAIN_SLICE``)."""
    return _ki.MAIN_SLICE if threading.get_ident() == _ki._main_ident else None


class Executor(concurrent.futures.Executor):
    """A drop-in ``ThreadPoolExecutor`` whose ``Future.cancel()`` reaches running calls.

    * at most ``max_workers`` calls run at once (default ``min(32, cpus + 4)``); threads come
      from threadwise's thread cache and go back to it when there is no queued work;
    * each call runs in a copy of the submitter's ``contextvars`` context under its own
      cancel scope, and shows in ``tw.threads()`` like a task, named ``<name>:<function>``,
      in a thread named ``<prefix>_<n>`` (``thread_name_prefix``, or else ``name``);
    * ``shutdown(cancel_futures=True)`` drops queued calls and cancels running ones;
    * Ctrl-C in the ``with`` block, in its exit or at interpreter exit cancels queued and
      running calls, waits ``grace`` seconds and reports the calls still stuck by name.
    """

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        name: str | None = None,
        thread_name_prefix: str = "",
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        grace: float = EXIT_GRACE,
    ) -> None:
        self._max_workers = _check_max_workers(max_workers)
        self._name = check_name(name) or f"Executor-{next(_counter)}"
        if not isinstance(thread_name_prefix, str):
            raise TypeError(f"thread_name_prefix must be a str, got {thread_name_prefix!r}")
        if initializer is not None:
            check_callable(initializer, "initializer")
        if not isinstance(initargs, tuple):
            raise TypeError(f"initargs must be a tuple, got {initargs!r}")
        grace_value = check_timeout(grace, "grace")
        self._grace = float("inf") if grace_value is None else grace_value
        self._prefix = thread_name_prefix or self._name
        self._initializer = initializer
        self._initargs = initargs
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._queue: deque[_Call] = deque()
        self._taking = 0  # runners still taking queued calls (at most max_workers)
        self._runners = 0  # runners not finished yet (their last result may be on its way)
        self._running: set[_Call] = set()
        self._watching_running = 0  # threads waiting for running calls to end
        # Idle runners (their wake-up lock and thread), the one that went idle last at the end.
        self._parked: list[tuple[threading.Lock, threading.Thread]] = []
        self._idle_wait = (_threads.IDLE, f"idle in executor {self._name!r}")
        self._free_slots: list[int] = []  # numbers for thread names, reused lowest first
        self._next_slot = 0
        self._shutdown = False
        self._gave_up = False  # Ctrl-C abandoned stuck calls: nothing more to wait for
        self._broken: str | bool = False
        self._cancelling: str | None = None  # why every call is being cancelled, once it is
        # The threads that have run calls for this executor (and its initializer); weak, as
        # the threads belong to the cache and retire by themselves.
        self._threads: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
        with _executors_lock:
            _executors.add(self)
        _threads.add_idle_source(self)

    @property
    def name(self) -> str:
        return self._name

    @property
    def max_workers(self) -> int:
        return self._max_workers

    # -- submitting ----------------------------------------------------------------------------
    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Schedule ``fn(*args, **kwargs)``; returns its ``Future``."""
        if not callable(fn):
            check_callable(fn)  # raises
        return self._submit(_partial(_copy_context().run, fn, *args, **kwargs), fn)

    def _submit(
        self, call: Callable[[], T], what: object, deadline: float | None = None
    ) -> Future[T]:
        """Queue ``call``; ``what`` names it (a str, or the function whose name to use)."""
        future: Future[T] = Future()
        item = _Call(future, call, self._name, what, deadline)
        with self._lock:
            if self._broken:
                raise BrokenThreadPool(self._broken)
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if _interpreter_exiting:
                raise RuntimeError("cannot schedule new futures after interpreter shutdown")
            self._queue.append(item)
            if self._parked:
                self._parked.pop()[0].release()  # the runner that went idle last
                return future
            if self._taking >= self._max_workers:
                return future
            self._taking += 1
            self._runners += 1
            slot = self._take_slot()
        try:
            _threads.start_thread_soon(
                functools.partial(self._runner, slot),
                self._runner_done,
                name=f"{self._prefix}_{slot}",
            )
        except BaseException:
            with self._lock:
                self._taking -= 1
                self._runners -= 1
                self._free_slots.append(slot)
                try:
                    self._queue.remove(item)  # the caller sees the error: it must not run
                except ValueError:  # pragma: no cover - another runner took it already
                    pass
            raise
        return future

    def _take_slot(self) -> int:
        if self._free_slots:
            self._free_slots.sort()
            return self._free_slots.pop(0)
        slot = self._next_slot
        self._next_slot += 1
        return slot

    # -- running -------------------------------------------------------------------------------
    def _runner(self, slot: int) -> _Call | None:
        """Run queued calls. With none left, wait up to the thread cache's idle timeout for
        more (parked on the executor, so a submit wakes it directly), then hand the thread
        back to the cache. A result is delivered once the runner is parked or gone, so the
        caller's next submit finds it ready instead of starting another thread."""
        me = threading.current_thread()
        if me not in self._threads:
            if self._initializer is not None and not self._initialize():
                self._release(slot)
                return None
            self._threads.add(me)
        lock = self._lock
        previous: _Call | None = None
        state = current_state()
        wake = _allocate_lock()  # released by the submit that has work for this runner
        wake.acquire()
        parked = (wake, me)
        lock.acquire()
        try:
            while True:
                if not self._queue:
                    if self._shutdown:
                        break
                    self._parked.append(parked)
                    lock.release()
                    try:
                        if previous is not None:
                            self._deliver(previous)
                            previous = None
                        state.blocked_on = self._idle_wait
                        woken = wake.acquire(True, _threads.cache.idle_timeout)
                        state.blocked_on = None
                    finally:
                        lock.acquire()
                    if not woken:
                        try:
                            self._parked.remove(parked)
                        except ValueError:
                            wake.acquire()  # a submit took it off the list as the wait ended
                            continue
                        _threads.retire_after_this_job()  # it has idled long enough
                        break
                    continue
                # Registered as running under the same lock hold that takes it off the queue,
                # so a shutdown(cancel_futures=True) sees every call either queued or running.
                # (Taking and running a call is written out here, not in methods of their
                # own: two Python calls fewer, about 1,000 of the 29,000 instructions this
                # thread spent per call.)
                call = self._queue.popleft()
                future = call.future
                deadline = call.deadline
                scope = call.scope = CancelScope._child(
                    None, None if deadline is None else call.name, deadline
                )
                if self._cancelling is not None:
                    scope.cancel(self._cancelling)  # it never starts
                future._tw_call = call
                started = future.set_running_or_notify_cancel()
                if started:
                    self._running.add(call)
                del future
                lock.release()
                try:
                    if previous is not None:
                        self._deliver(previous)
                    if started:
                        now = _monotonic()
                        if scope._cancelled or (deadline is not None and now >= deadline):
                            call.state = _CANCELLED  # cancelled before it could start
                        else:
                            call.state = _RUNNING
                            state.task, state.scope = call, scope  # type: ignore[assignment]
                            state.since = now
                            try:
                                call.result = call.fn()
                            except Cancelled as exc:
                                if scope._is_cancelled():
                                    call.state = _CANCELLED
                                else:  # raised by hand, not by a cancelled scope: a failure
                                    call.exception = exc
                                    call.state = _FAILED
                            except BaseException as exc:
                                call.exception = exc
                                call.state = _FAILED
                            else:
                                call.state = _DONE
                            finally:
                                state.task = state.scope = None
                finally:
                    lock.acquire()
                if started:
                    self._running.discard(call)
                    if self._watching_running:
                        self._drained.notify_all()
                    previous = call
                else:
                    previous = None
                del call
            self._taking -= 1
            self._free_slots.append(slot)
            return previous
        finally:
            lock.release()

    def _release(self, slot: int) -> None:
        with self._lock:
            self._taking -= 1
            self._free_slots.append(slot)

    def _runner_done(self, last: _Call | None) -> None:
        try:
            if last is not None:
                self._deliver(last)
        finally:
            with self._lock:
                self._runners -= 1
                if self._runners == 0:
                    self._drained.notify_all()

    def _deliver(self, call: _Call) -> None:
        future = call.future
        future._tw_call = None
        state = call.state
        if state is _CANCELLED:
            future._tw_end_cancelled()
            return
        exc = call.exception
        call.exception = None
        if future._tw_cancel_requested:
            late = CancelledTooLate(
                f"{call.name} was cancelled while running but did not reach a threadwise "
                "checkpoint; it ran to its end"
                + (f" and raised {exc!r}" if exc is not None else ""),
                value=call.result,
            )
            late.__cause__ = exc
            future.set_exception(late)
        elif exc is not None:
            try:
                future.set_exception(exc)
            finally:
                del exc
        else:
            future.set_result(call.result)
        call.result = None

    def _initialize(self) -> bool:
        assert self._initializer is not None
        try:
            self._initializer(*self._initargs)
        except BaseException:
            _cf_logger.critical("Exception in initializer:", exc_info=True)
            self._break("A thread initializer failed, the thread pool is not usable anymore")
            return False
        return True

    def _break(self, why: str) -> None:
        with self._lock:
            self._broken = why
            queued = list(self._queue)
            self._queue.clear()
        for item in queued:
            if item.future.set_running_or_notify_cancel():  # not if cancelled meanwhile
                item.future.set_exception(BrokenThreadPool(why))

    # -- map -------------------------------------------------------------------------------
    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
    ) -> Iterator[T]:
        """``map(fn, *iterables)`` with the calls run concurrently; results in order.

        ``buffersize`` bounds how many calls are submitted ahead of the consumer (Python
        3.14's ``Executor.map``, on every Python); None submits every call at once, as the
        stdlib always did. ``chunksize`` is accepted for compatibility and not used by a
        thread executor. Stopping the iteration early cancels the calls not yet consumed.
        """
        check_callable(fn)
        seconds = check_timeout(timeout)
        if isinstance(chunksize, bool) or not isinstance(chunksize, int):
            raise TypeError(f"chunksize must be an int >= 1, got {chunksize!r}")
        if chunksize < 1:
            raise ValueError(f"chunksize must be >= 1, got {chunksize!r}")
        if buffersize is not None:
            if isinstance(buffersize, bool) or not isinstance(buffersize, int):
                raise TypeError(f"buffersize must be an int >= 1 or None, got {buffersize!r}")
            if buffersize < 1:
                raise ValueError(f"buffersize must be >= 1, got {buffersize!r}")
        end = None if seconds is None else _monotonic() + seconds
        args_iter = zip(*iterables, strict=False)
        if buffersize is None:
            fs = deque(self.submit(fn, *args) for args in args_iter)
        else:
            fs = deque(self.submit(fn, *args) for args in itertools.islice(args_iter, buffersize))
        return _map_results(fs, weakref.ref(self), fn, args_iter, buffersize, end)

    # -- shutdown --------------------------------------------------------------------------
    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No new calls; ``cancel_futures`` drops queued calls and cancels running ones;
        ``wait`` waits until every call has ended (Ctrl-C while waiting cancels them all)."""
        self._stop_taking()
        if cancel_futures:
            self._cancel_all("the executor was shut down with cancel_futures=True")
        if wait and not self._gave_up:
            try:
                self._wait_runners(None)
            except KeyboardInterrupt:
                self._interrupt()
                raise

    def _stop_taking(self) -> None:
        """No new calls; idle runners leave."""
        with self._lock:
            self._shutdown = True
            parked, self._parked = self._parked, []
        for wake, _ in parked:
            wake.release()

    def _idle_threads(self) -> set[threading.Thread]:
        with self._lock:
            return {thread for _, thread in self._parked}

    def _cancel_all(self, reason: str) -> None:
        with self._lock:
            queued = list(self._queue)
            self._queue.clear()
            if self._cancelling is None:
                self._cancelling = reason
            running = list(self._running)
        for item in queued:
            if item.future.cancel():
                item.future.set_running_or_notify_cancel()  # as_completed/wait see it done
        for call in running:
            call.cancel(reason)

    def _wait_runners(self, timeout: float | None) -> bool:
        end = None if timeout is None else _monotonic() + timeout
        most = _wait_slice()
        with self._lock:
            while self._runners:
                if end is None:
                    self._drained.wait(most)
                else:
                    left = end - _monotonic()
                    if left <= 0:
                        return False
                    self._drained.wait(left if most is None else min(left, most))
        return True

    def _interrupt(self, why: str = "interrupted (Ctrl-C)") -> None:
        """Ctrl-C: drop queued calls, cancel running ones, give them ``grace`` seconds; the
        calls still running then are reported by name and left to their daemon threads."""
        reason = f"executor {self._name!r} was {why}"
        self._stop_taking()
        self._cancel_all(reason)
        end = _monotonic() + self._grace
        try:
            with self._lock:
                self._watching_running += 1
                try:
                    most = _wait_slice()
                    while self._running and (left := end - _monotonic()) > 0:
                        self._drained.wait(left if most is None else min(left, most))
                finally:
                    self._watching_running -= 1
            self._wait_runners(max(0.0, end - _monotonic()))
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting now
            pass
        with self._lock:
            stuck = sorted(call.name for call in self._running)
        self._gave_up = True
        if stuck:
            logger.warning(
                "%s; abandoned %d call(s) still running in code that cannot be cancelled "
                "(their daemon threads will not keep the process alive): %s",
                reason,
                len(stuck),
                ", ".join(repr(name) for name in stuck),
            )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        if isinstance(exc, KeyboardInterrupt):
            self._interrupt()
            return False
        self.shutdown(wait=True)
        return False

    def __repr__(self) -> str:
        state = "shut down" if self._shutdown else "running"
        return (
            f"<threadwise.Executor {self._name!r} {state} max_workers={self._max_workers} "
            f"queued={len(self._queue)} running={len(self._running)}>"
        )


def _map_results(
    fs: deque[Future[T]],
    executor_ref: weakref.ref[Executor],
    fn: Callable[..., T],
    args_iter: Iterator[tuple[Any, ...]],
    buffersize: int | None,
    end: float | None,
) -> Iterator[T]:
    # A generator outside the executor, holding it weakly: an abandoned iterator does not keep
    # the executor alive, and leaving the loop cancels the calls not consumed yet.
    try:
        while fs:
            if buffersize is not None:
                executor = executor_ref()
                args = next(args_iter, None) if executor is not None else None
                if executor is not None and args is not None:
                    fs.append(executor.submit(fn, *args))
                del executor
            # No local name for the future: the consumer alone holds the result it gets.
            yield _result_or_cancel(fs.popleft(), None if end is None else end - _monotonic())
    finally:
        for future in fs:
            future.cancel()


def _result_or_cancel(future: Future[T], timeout: float | None) -> T:
    try:
        try:
            return future.result(timeout)
        finally:
            future.cancel()
    finally:
        del future  # no reference to the result stays in this frame


# -- interpreter exit --------------------------------------------------------------------------


def _shutdown_at_exit() -> None:
    """Like the stdlib pool: wait for submitted calls; after Ctrl-C, cancel them instead."""
    global _interpreter_exiting
    with _executors_lock:
        _interpreter_exiting = True
        executors = [executor for executor in _executors if not executor._gave_up]
    if _exiting_on_ctrl_c():
        for executor in executors:
            executor._interrupt("interrupted (Ctrl-C) at interpreter exit")
        return
    try:
        for executor in executors:
            executor.shutdown(wait=True)
    except KeyboardInterrupt:
        for executor in executors:
            executor._interrupt("interrupted (Ctrl-C) at interpreter exit")


_register_atexit = getattr(threading, "_register_atexit", None)
if _register_atexit is not None:  # runs before the interpreter joins non-daemon threads
    _register_atexit(_ki.exit_hook(_shutdown_at_exit))
else:  # pragma: no cover - every supported CPython has it
    import atexit

    atexit.register(_ki.exit_hook(_shutdown_at_exit))
