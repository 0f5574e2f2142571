"""Tasks: a function running in a thread, with a result, a state and a cancel scope."""

from __future__ import annotations

import atexit
import contextvars
import enum
import functools
import itertools
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable

from . import _cancel, _ki, _state, _threads
from ._cancel import CancelMode, CancelScope
from ._cancel import _after_fork as cancel_after_fork
from ._exceptions import Cancelled
from ._local import _all_locals, close_thread_locals
from ._log import Logger
from ._state import _after_fork as state_after_fork
from ._state import current_state
from ._sync import Event
from ._typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, cast
from ._validate import check_callable, check_timeout, describe_callable

if TYPE_CHECKING:
    from ._group import TaskGroup

P = ParamSpec("P")
T = TypeVar("T")

logger = Logger("threadwise")


class State(enum.Enum):
    """The lifecycle of a task, as the classic thread-state diagram draws it."""

    CREATED = "created"
    RUNNING = "running"
    BLOCKED = "blocked"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __repr__(self) -> str:
        return f"State.{self.name}"


_FINISHED = frozenset({State.DONE, State.FAILED, State.CANCELLED})
# The members as module globals: on Python 3.11 every ``State.X`` goes through the enum
# metaclass's __getattr__ (a Python call), and tasks read their state several times each.
_CREATED = State.CREATED
_RUNNING = State.RUNNING
_BLOCKED = State.BLOCKED
_DONE = State.DONE
_FAILED = State.FAILED
_CANCELLED = State.CANCELLED


def _no_call() -> Any:
    return None


# Numbers for task names: 1, 2, 3... ``next()`` of an ``itertools.count`` is one C call that
# no other thread can interleave with, also on free-threaded builds (an atomic increment since
# CPython 3.13), where a lock round trip would cost several times as much, once per task.
next_task_number = itertools.count(1).__next__
_allocate_lock = threading.Lock
_TIMEOUT_MAX = threading.TIMEOUT_MAX
# What a cached worker calls with the job lock ``_run_and_close`` returns, once it is free
# again: the lock type's own release (a C call, no Python frame or bound method per task).
# (Typed for what _run_and_close returns: only a cached task's job, whose lock is set, uses it.)
_release_job = cast("Callable[[threading.Lock | None], None]", _threads.release_lock)
_get_ident = threading.get_ident
_get_native_id = threading.get_native_id
_state_local = _state._local
_monotonic = time.monotonic


class _Registry:
    """Weak references to failed tasks whose exception nobody has looked at yet.

    A plain dict of ``weakref.ref`` without callbacks, guarded by a lock: adding and
    snapshotting happen from many threads, and a weakref callback could run (from the garbage
    collector) while this thread holds the lock.
    """

    __slots__ = ("_lock", "_prune_at", "_refs")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refs: dict[int, weakref.ref[Task[Any]]] = {}
        self._prune_at = 64

    def add(self, task: Task[Any]) -> None:
        ref = weakref.ref(task)
        with self._lock:
            self._refs[id(task)] = ref  # a dead task's id may be reused: replace its ref
            if len(self._refs) >= self._prune_at:
                self._refs = {k: r for k, r in self._refs.items() if r() is not None}
                self._prune_at = max(64, 2 * len(self._refs))

    def snapshot(self) -> list[Task[Any]]:
        with self._lock:
            refs = list(self._refs.values())
        return [t for t in (r() for r in refs) if t is not None]

    def _after_fork(self) -> None:
        # The parent's failures are the parent's to report, once.
        self._lock = threading.Lock()
        self._refs = {}


# Failed tasks whose exception nobody has looked at yet; reported at exit if still unseen.
_failed_tasks = _Registry()
# Tasks on threadwise's daemon threads that the interpreter should still wait for at exit.
_live_tasks: set[Task[Any]] = set()
_live_lock = threading.Lock()


class Task(Generic[T]):
    """A unit of work with a result. Create with ``spawn()`` or ``TaskGroup.spawn()``."""

    __slots__ = (
        "__weakref__",
        "_call",
        "_callbacks",
        "_closed",
        "_done",
        "_exception",
        "_group",
        "_ident",
        "_job",
        "_live",
        "_lock",
        "_name",
        "_native_id",
        "_own_thread",
        "_result",
        "_retrieved",
        "_scope",
        "_state",
        "_thread",
    )

    def __init__(
        self,
        call: Callable[[], T],
        name: str,
        *,
        parent_scope: CancelScope | None = None,
        group: TaskGroup | None = None,
    ) -> None:
        self._call = call
        self._name = name
        self._group = group
        if group is None:
            self._scope = CancelScope._child(parent_scope, f"task {name!r}")
        else:
            # Outside the scope tree: the group passes its scope's cancel on (see TaskGroup
            # and its spawn()); the deadline is inherited as a child's would be.
            self._scope = CancelScope._child(None, f"task {name!r}")
            self._scope._deadline = group._scope._deadline
        self._state = _CREATED
        self._result: T | None = None
        self._exception: BaseException | None = None
        self._retrieved = False
        # Made on first wait only: most tasks are collected by a group, never waited on alone.
        self._done: Event | None = None
        self._live = False  # registered in _live_tasks (waited for at interpreter exit)
        # A group's tasks share their group's lock: a task's end and the group's count of
        # running tasks change in one locked step (and no lock is made per task).
        self._lock = threading.Lock() if group is None else group._lock
        # Besides the group's own bookkeeping (called first, directly). None once finished:
        # what says that the task has finished, under the lock (with the outcome in place).
        self._callbacks: tuple[Callable[[Task[T]], None], ...] | None = ()
        self._ident: int | None = None
        self._native_id: int | None = None
        self._thread: threading.Thread | None = None
        # On a thread of the thread cache instead: held from the start until the worker is
        # free again (past the ThreadLocal close hooks); that is what joining it waits for.
        self._job: threading.Lock | None = None
        self._own_thread = False  # True when the thread (or the job) exists for this task alone
        self._closed = False  # its own thread has closed its ThreadLocal instances

    # -- running ---------------------------------------------------------------------------
    def _run(self) -> None:
        """Run the task in the calling thread (a task thread or a group worker)."""
        # Not `with lock`: a `with` makes two bound methods and parses arguments, half again
        # as much as the lock round trip itself, once per task. (Never the main thread, where
        # a Ctrl-C could land between the acquire and the try.)
        lock = self._lock
        lock.acquire()
        try:
            if self._state is not _CREATED:
                return  # cancelled before it could start
            self._ident = _get_ident()
            self._native_id = _get_native_id()
            now = _monotonic()
            scope = self._scope
            deadline = scope._deadline  # CancelScope._is_cancelled, inlined (once per task)
            if scope._cancelled or (deadline is not None and now >= deadline):
                # Its group was cancelled while it waited for a worker: it never starts.
                self._state = _CANCELLED
                started = False
            else:
                self._state = _RUNNING
                started = True
        finally:
            lock.release()
        if not started:
            self._finish(_CANCELLED, None, None)
            return
        try:
            state = _state_local.state  # current_state(), inlined (once per task)
        except AttributeError:
            state = current_state()
        previous_task, previous_scope = state.task, state.scope
        state.task, state.scope = self, scope
        state.since = now
        result: T | None = None
        error: BaseException | None = None
        try:
            result = self._call()
        except Cancelled as exc:
            if self._scope._is_cancelled():
                outcome = _CANCELLED
            else:  # raised by hand, not by a cancelled scope: that is a failure
                outcome, error = _FAILED, exc
        except BaseException as exc:
            outcome, error = _FAILED, exc
        else:
            outcome = _DONE
        finally:
            state.task, state.scope = previous_task, previous_scope
            # Drop the function and its arguments: a finished task must not keep them alive
            # (nor a cycle through a Thread whose target refers back to it).
            self._call = _no_call
        self._finish(outcome, result, error)

    def _finish(self, outcome: State, result: T | None, error: BaseException | None) -> None:
        """Publish the outcome: state, result and exception change together, under the lock,
        so whoever sees the task finished also sees its result."""
        parent = self._scope._parent
        if parent is not None:  # self._scope._detach(), inlined (once per task)
            with _cancel._tree_lock:
                children = parent._children
                if children is not None:
                    children.discard(self._scope)
        group = self._group
        lock = self._lock
        lock.acquire()  # not `with`, as in _run (Ctrl-C protected here: see the module's end)
        try:
            self._result = result
            self._exception = error
            self._state = outcome
            event = self._done
            callbacks, self._callbacks = self._callbacks, None
            if group is not None:
                # The group's bookkeeping, under the lock it shares with its tasks (see
                # __init__): whoever sees the group with no task pending sees every outcome.
                group._pending -= 1
                group._running.discard(self)
                if error is not None:
                    group._failures.append(error)
                    self._retrieved = True  # the group raises it
                if group._pending == 0:
                    waiter = group._exit_waiter  # group._wake_exit(), inlined
                    if waiter is not None:
                        group._exit_waiter = None
                        waiter.wake()
        finally:
            lock.release()
        if error is not None and group is None and self._tracks_unretrieved(error):
            _failed_tasks.add(self)
        if event is not None:
            event.set()
        if group is not None and error is not None:
            group._on_task_failed(self)
        if callbacks:
            for callback in callbacks:
                callback(self)
        if self._live:
            with _live_lock:
                _live_tasks.discard(self)

    def _tracks_unretrieved(self, error: BaseException) -> bool:
        """Whether an exception nobody retrieves is reported (a Thread's sys.exit() is not)."""
        return True

    def _abort_start(self) -> None:
        """Forget a task whose thread could not be started (it never ran; nobody holds it)."""
        self._scope._detach()
        with self._lock:
            self._state = _CANCELLED
            self._callbacks = None
        if self._live:
            with _live_lock:
                _live_tasks.discard(self)

    def _wait_finished(self, timeout: float | None, cancel: CancelMode = "raise") -> bool:
        """Wait until the task has finished (True) or ``timeout`` passed (False)."""
        with self._lock:
            if self._callbacks is None:  # finished
                return True
            event = self._done
            if event is None:
                event = self._done = Event(name=f"done of task {self._name!r}")
        return event._wait(timeout, cancel)

    def _add_done_callback(self, callback: Callable[[Task[T]], None]) -> None:
        with self._lock:
            if self._callbacks is not None:
                self._callbacks = (*self._callbacks, callback)
                return
        callback(self)  # already finished

    def _set_blocked(self, blocked: bool) -> None:
        # Only the task's own thread calls this, while the task runs.
        if self._state is _RUNNING or self._state is _BLOCKED:
            self._state = _BLOCKED if blocked else _RUNNING

    def _run_and_close(self) -> threading.Lock | None:
        """Run the task, then close the thread's ThreadLocal instances. Returns the job lock
        (a cached task's), which the worker releases (``_release_job``) once it is free."""
        try:
            self._run()
        finally:
            # The thread ends here: release its per-thread resources. (No ThreadLocal ever
            # made, the common case: close_thread_locals would return at once; a call less.)
            if _all_locals:
                close_thread_locals()
            self._closed = True
        return self._job

    def _start_thread(self, *, register_live: bool, cached: bool = False) -> None:
        """Run the task in a new daemon thread: the one place a task's thread is started.
        ``cached``: on a thread of the thread cache instead, joined alike (see ``_job``).

        If the thread cannot be started (``RuntimeError: can't start new thread``) the task
        is forgotten, never to run, and the error propagates to the caller of ``spawn``.
        """
        self._prepare_thread(cached=cached)
        self._start_prepared(register_live=register_live)

    def _prepare_thread(self, *, cached: bool) -> None:
        """Make (not start) the task's own thread; ``_start_prepared`` starts it."""
        if cached:
            # No thread object of its own: the task's lock-held-while-running is the handle
            # (taken when the job is queued, so a job never queued is not waited for).
            self._job = _allocate_lock()
        else:
            self._thread = threading.Thread(
                target=self._run_and_close, name=self._name, daemon=True
            )
        self._own_thread = True

    def _start_prepared(self, *, register_live: bool) -> None:
        if register_live:
            self._live = True
            with _live_lock:
                _live_tasks.add(self)
        try:
            if self._job is not None:
                _threads.cache.start_thread_soon(
                    self._run_and_close, _release_job, self._name, self._job
                )
            else:
                assert self._thread is not None
                self._thread.start()
        except RuntimeError:  # dropped: no thread could take it (Ctrl-C leaves it queued)
            self._thread = self._job = None
            self._own_thread = False
            self._abort_start()
            raise

    def _thread_alive(self) -> bool:
        """Whether the task's own thread (or job) has not ended yet."""
        job = self._job
        if job is not None:
            return job.locked()
        thread = self._thread
        return thread is not None and thread.ident is not None and thread.is_alive()

    def _join_own_thread(self, timeout: float | None) -> bool:
        """Join the task's own thread (or job) for at most ``timeout`` seconds (None: no
        limit); True if it has ended. Joined from inside the job: False at once."""
        job = self._job
        if job is None:
            thread = self._thread
            if thread is None or thread is threading.current_thread():
                return thread is None
            if timeout is None:
                thread.join()
                return True
            return _join_thread(thread, timeout)
        if not job.locked():
            return True
        if self._ident == _get_ident():
            return False  # joined from inside the job: it cannot end while we wait for it
        _threads.wait_released(job, None if timeout is None else min(timeout, _TIMEOUT_MAX))
        return not job.locked()

    # -- public ----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def state(self) -> State:
        return self._state

    @property
    def ident(self) -> int | None:
        """``threading.get_ident()`` of the thread running the task (None before it starts)."""
        return self._ident

    @property
    def native_id(self) -> int | None:
        return self._native_id

    @property
    def group(self) -> TaskGroup | None:
        return self._group

    @property
    def blocked_on(self) -> str | None:
        """What the task waits for while BLOCKED, e.g. ``"Queue.get on 'jobs'"``."""
        if self._state is not _BLOCKED or self._ident is None:
            return None
        from ._state import all_states

        state = all_states().get(self._ident)
        return None if state is None else state.describe_blocked_on()

    def done(self) -> bool:
        return self._state in _FINISHED

    def cancelled(self) -> bool:
        return self._state is _CANCELLED

    def cancel(self, reason: str | None = None) -> bool:
        """Cancel the task: it never starts, or its next checkpoint raises ``Cancelled``.

        Returns False if the task had already finished.
        """
        if reason is not None and not isinstance(reason, str):
            raise TypeError(f"reason must be a str or None, got {reason!r}")
        why = reason or f"task {self._name!r} was cancelled"
        with self._lock:
            if self._callbacks is None:  # finished
                return False
            not_started = self._state is _CREATED
            if not_started:
                self._state = _CANCELLED
        self._scope.cancel(why)
        if not_started:
            self._finish(_CANCELLED, None, None)
        return True

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the task has finished; True if it has. Cancellable.

        After the task's function has returned, its own thread still closes its
        ``ThreadLocal`` instances; that is waited for within ``timeout`` too (with no timeout,
        at most ``EXIT_GRACE`` seconds), and a thread still busy then is reported as abandoned.
        """
        seconds = check_timeout(timeout)
        end = None if seconds is None else time.monotonic() + seconds
        if not self._wait_for_sibling_or_self(seconds):
            return False
        if self._own_thread:
            if self._closed:
                # Past its ThreadLocal close hooks, the last user code it runs: the thread is
                # ending now. (An untimed join is markedly cheaper than a timed one.)
                self._join_own_thread(None)
            else:
                left = EXIT_GRACE if end is None else max(0.0, end - time.monotonic())
                if not self._join_own_thread(left) and not self._joined_from_inside():
                    _abandon_thread(self._name, f"task {self._name!r} finished")
        return True

    def _joined_from_inside(self) -> bool:
        thread = self._thread
        if self._job is None:
            return thread is not None and thread is threading.current_thread()
        return self._ident == _get_ident()

    def _wait_for_sibling_or_self(self, seconds: float | None) -> bool:
        with self._lock:
            if self._callbacks is None:  # finished
                return True
        me = current_state().task
        if me is self or (self._ident is not None and self._ident == threading.get_ident()):
            raise RuntimeError(f"task {self._name!r} cannot wait for itself (it would hang)")
        group = self._group
        if me is None or group is None or me._group is not group:
            return self._wait_finished(seconds)
        # A task waiting on a task of its own bounded group gives its worker slot back while
        # it waits, so the awaited task can get a worker (otherwise: a deadlock once every
        # slot is taken by a waiting task).
        group._lend_slot()
        try:
            return self._wait_finished(seconds)
        finally:
            group._reclaim_slot()

    def _wait_done(self, timeout: float | None) -> None:
        if not self.join(timeout):
            raise TimeoutError(
                f"task {self._name!r} did not finish within {timeout} s (it is still running)"
            )

    def _outcome(self) -> tuple[State, T | None, BaseException | None]:
        with self._lock:
            self._retrieved = True
            return self._state, self._result, self._exception

    def result(self, timeout: float | None = None) -> T:
        """The return value; re-raises the task's exception with its original traceback.

        Raises the builtin ``TimeoutError`` if the task is not done in time and
        ``TaskCancelled`` if it was cancelled.
        """
        self._wait_done(timeout)
        state, result, exc = self._outcome()
        if state is _CANCELLED:
            from ._future_errors import TaskCancelled  # imports concurrent.futures: lazily

            raise TaskCancelled(f"task {self._name!r} was cancelled")
        if exc is not None:
            try:
                raise exc
            finally:
                del exc  # no frame -> exception -> frame cycle
        return result  # type: ignore[return-value]

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The exception the task raised, or None if it returned normally."""
        self._wait_done(timeout)
        state, _, exc = self._outcome()
        if state is _CANCELLED:
            from ._future_errors import TaskCancelled  # imports concurrent.futures: lazily

            raise TaskCancelled(f"task {self._name!r} was cancelled")
        return exc

    def __repr__(self) -> str:
        return f"<threadwise.Task {self._name!r} {self._state.name}>"

    def _report_unretrieved(self) -> None:
        """Say that this task failed and nobody looked: a log record on ``threadwise``."""
        self._retrieved = True
        exc = self._exception
        if exc is None:
            return
        logger.error(
            "task %r failed and its exception was never retrieved",
            self._name,
            exc_info=(type(exc), exc, exc.__traceback__),
        )


class _LooseTask(Task[T]):
    """A task of no group: a failure that nobody retrieved is reported when the task is freed.

    (A group raises its tasks' failures itself, so its tasks do without a ``__del__``: a
    Python call per task saved, in the groups' fixed cost.)"""

    __slots__ = ()

    def __del__(self) -> None:
        try:
            unretrieved = self._exception is not None and not self._retrieved
        except AttributeError:  # __init__ did not complete (e.g. Ctrl-C inside it)
            return
        if unretrieved:
            self._report_unretrieved()


def _join_thread(thread: threading.Thread, timeout: float) -> bool:
    """Join ``thread`` for at most ``timeout`` seconds; True if it has ended."""
    if not thread.is_alive() or thread.ident is None:
        return True  # ended, or never started (the cheap check: a timed join costs more)
    if _get_ident() != _ki._main_ident:
        thread.join(min(timeout, _TIMEOUT_MAX))
        return not thread.is_alive()
    # The main thread joins in slices: a Ctrl-C taken by another thread (Python only flags it
    # for the main thread) is raised between two, not when the whole timeout has run out.
    end = _monotonic() + timeout
    while True:
        left = end - _monotonic()
        thread.join(max(0.0, min(left, _ki.MAIN_SLICE)))
        if not thread.is_alive():
            return True
        if left <= _ki.MAIN_SLICE:
            return False


def _abandon_thread(name: str, why: str) -> None:
    """Report a thread (``name``) still closing its ThreadLocal instances as abandoned."""
    logger.warning(
        "%s, but its thread %r is still running (closing its ThreadLocal instances); "
        "abandoned it (a daemon thread: it will not keep the process alive)",
        why,
        name,
    )


def _new_name(fn: Callable[..., Any]) -> str:
    return f"{describe_callable(fn)}-{next_task_number()}"


def _bind(fn: Callable[P, T], args: Any, kwargs: Any) -> Callable[[], T]:
    """``fn(*args, **kwargs)`` to run later in a copy of the caller's contextvars context."""
    # A partial of the context's run: no Python frame of our own around every task.
    run: Callable[..., Any] = contextvars.copy_context().run
    call: Callable[[], T] = functools.partial(run, fn, *args, **kwargs)
    return call


def spawn(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Task[T]:
    """Start ``fn(*args, **kwargs)`` in a new thread now and return its ``Task``.

    The task runs in a copy of the caller's ``contextvars`` context. Rename it with
    ``Task`` names via a ``TaskGroup`` or keep the default ``<function name>-<n>``.
    """
    check_callable(fn)
    task: Task[T] = _LooseTask(_bind(fn, args, kwargs), _new_name(fn))
    task._start_thread(register_live=True, cached=True)
    return task


# -- threading.Thread, with results ------------------------------------------------------------


class _ThreadTask(Task[Any]):
    """The task inside a ``tw.Thread``: unretrieved failures go to ``threading.excepthook``."""

    __slots__ = ("_owner",)

    _owner: weakref.ref[Thread] | None

    def _tracks_unretrieved(self, error: BaseException) -> bool:
        # The stdlib ends a thread quietly on SystemExit (sys.exit() in a thread); so do we.
        return not isinstance(error, SystemExit)

    def _finish(self, outcome: State, result: Any, error: BaseException | None) -> None:
        if isinstance(error, SystemExit):
            # A quiet exit keeps no frames alive (the stdlib keeps nothing at all): the
            # SystemExit stays available to exception() without its traceback.
            error.__traceback__ = None
            error.__context__ = None
        super()._finish(outcome, result, error)

    def _report_unretrieved(self, owner: Thread | None = None) -> None:
        self._retrieved = True
        exc = self._exception
        if exc is None or isinstance(exc, SystemExit):
            return
        if owner is None and self._owner is not None:
            owner = self._owner()
        args = threading.ExceptHookArgs((type(exc), exc, exc.__traceback__, owner))
        try:
            threading.excepthook(args)
        except Exception as hook_error:
            # As the stdlib does when a custom hook fails: fall back to sys.excepthook.
            sys.excepthook(type(hook_error), hook_error, hook_error.__traceback__)
        finally:
            del args, exc


class Thread(threading.Thread):
    """A drop-in ``threading.Thread`` that keeps ``run()``'s return value and exception.

    Works with ``target=``, with subclasses that override ``run`` (also through a mixin),
    and adds ``result()``, ``exception()``, ``state``, ``cancel()`` and ``cancelled()`` as on
    ``Task``. The one difference from ``threading.Thread``: an exception ``run()`` raises is
    kept for ``result()`` instead of being passed to ``threading.excepthook`` at once. If
    nobody calls ``result()`` or ``exception()``, it is passed to ``threading.excepthook``
    when the Thread object is garbage-collected, or at interpreter exit, whichever comes
    first. ``SystemExit`` (``sys.exit()`` in the thread) ends the thread quietly, as in the
    stdlib: ``exception()`` returns it, ``result()`` re-raises it, nothing is reported.

    Calling ``run()`` directly (not through ``start()``) is a plain method call, as in the
    stdlib: it does not touch ``state``/``result()``.
    """

    _tw_task: _ThreadTask
    _tw_context: contextvars.Context

    def __init__(
        self,
        group: None = None,
        target: Callable[..., object] | None = None,
        name: str | None = None,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        daemon: bool | None = None,
    ) -> None:
        if target is not None:
            check_callable(target, "target")
        super().__init__(group, target, name, args, kwargs, daemon=daemon)
        task = _ThreadTask(_no_call, self.name)
        task._owner = weakref.ref(self)
        self._tw_task = task
        self._tw_context = contextvars.copy_context()

    def start(self) -> None:
        self._tw_context = contextvars.copy_context()
        # The new thread's bootstrap calls ``self.run()``: an instance attribute placed here
        # is found before whatever ``run`` the class hierarchy defines (a subclass, a mixin,
        # ours), so the thread's entry goes through _tw_bootstrap_run whatever the MRO is.
        previous = self.__dict__.get("run", _MISSING)
        self.__dict__["run"] = functools.partial(_bootstrap_run, self, previous)
        try:
            super().start()
        except BaseException:
            _restore_run(self, previous)
            raise

    def run(self) -> Any:
        target = getattr(self, "_target", None)
        if target is None:
            return None
        try:
            return target(*self._args, **self._kwargs)  # type: ignore[attr-defined]
        finally:
            del self._target, self._args, self._kwargs  # type: ignore[attr-defined]

    def _require_started(self, what: str) -> None:
        if not self._started.is_set() and self._tw_task._state is not _CANCELLED:  # type: ignore[attr-defined]
            raise RuntimeError(f"cannot get the {what} of a thread before it is started")

    def result(self, timeout: float | None = None) -> Any:
        self._require_started("result")
        return self._tw_task.result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._require_started("exception")
        return self._tw_task.exception(timeout)

    @property
    def state(self) -> State:
        return self._tw_task._state

    @property
    def blocked_on(self) -> str | None:
        return self._tw_task.blocked_on

    def cancel(self, reason: str | None = None) -> bool:
        return self._tw_task.cancel(reason)

    def cancelled(self) -> bool:
        return self._tw_task.cancelled()

    def __del__(self) -> None:
        task = self.__dict__.get("_tw_task")
        if task is not None and task._exception is not None and not task._retrieved:
            # Weak references die before finalizers run in a collected cycle: pass self.
            task._report_unretrieved(self)


_MISSING: Any = object()


def _restore_run(thread: Thread, previous: Any) -> None:
    if previous is _MISSING:
        thread.__dict__.pop("run", None)
    else:
        thread.__dict__["run"] = previous


def _bootstrap_run(thread: Thread, previous: Any) -> Any:
    """The thread's first call of ``run()``: run the real ``run`` as the Thread's task."""
    if threading.current_thread() is not thread:
        # Another thread called run() directly before the new thread got here: a plain call.
        return type(thread).run(thread) if previous is _MISSING else previous()
    _restore_run(thread, previous)
    task = thread._tw_task
    task._name = thread.name
    task._call = functools.partial(thread._tw_context.run, thread.run)
    try:
        task._run()
    finally:
        close_thread_locals()
    return None


# -- interpreter exit ------------------------------------------------------------------------

EXIT_GRACE = 1.0


def abandon(tasks: list[Task[Any]], why: str) -> None:
    """Stop waiting for tasks stuck in code that cannot be cancelled, and say so by name."""
    if not tasks:
        return
    with _live_lock:
        for task in tasks:
            _live_tasks.discard(task)
    names = ", ".join(repr(t.name) for t in tasks)
    logger.warning(
        "%s; abandoned %d task(s) still running in code that cannot be cancelled "
        "(their daemon threads will not keep the process alive): %s",
        why,
        len(tasks),
        names,
    )


def cancel_and_wait(tasks: list[Task[Any]], reason: str, grace: float) -> list[Task[Any]]:
    """Cancel ``tasks``, wait up to ``grace`` seconds, return the ones still running."""
    for task in tasks:
        task.cancel(reason)
    end = time.monotonic() + grace
    for task in tasks:
        left = end - time.monotonic()
        if left <= 0:
            break
        task._wait_finished(left, "ignore")
    return [t for t in tasks if not t.done()]


def _exiting_on_ctrl_c() -> bool:
    last = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    return isinstance(last, KeyboardInterrupt)


def _wait_for_tasks_at_exit() -> None:
    """Like the interpreter's join of non-daemon threads, but Ctrl-C cancels and moves on."""
    with _live_lock:
        tasks = list(_live_tasks)
    if not tasks:
        return
    if _exiting_on_ctrl_c():
        stuck = cancel_and_wait(tasks, "the program was interrupted (Ctrl-C)", EXIT_GRACE)
        abandon(stuck, "interpreter exit after Ctrl-C")
        return
    try:
        for task in tasks:
            task._wait_finished(None, "ignore")
    except KeyboardInterrupt:
        stuck = cancel_and_wait(tasks, "the program was interrupted (Ctrl-C)", EXIT_GRACE)
        abandon(stuck, "interpreter exit after Ctrl-C")


def _report_failures_at_exit() -> None:
    for task in _failed_tasks.snapshot():
        if not task._retrieved:
            task._report_unretrieved()


def _after_fork_in_child() -> None:
    """A forked child has only the thread that forked: the parent's tasks are not its own.

    Without this the child would wait at exit for tasks whose threads do not exist in it,
    and a kernel lock held by another thread at the instant of the fork would stay held.
    """
    global _live_lock
    _live_lock = threading.Lock()
    _live_tasks.clear()
    _failed_tasks._after_fork()
    cancel_after_fork()
    state_after_fork()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)

# A task's end runs in the main thread too (cancel() of a task not started yet): Ctrl-C waits
# until its locked step is done (see _ki), which takes the lock without a `with`. The callbacks
# it calls are not protected.
_ki.protected(Task._finish)

_register_atexit = getattr(threading, "_register_atexit", None)
if _register_atexit is not None:  # runs before the interpreter joins non-daemon threads
    _register_atexit(_ki.exit_hook(_wait_for_tasks_at_exit))
else:  # pragma: no cover - every supported CPython has it
    atexit.register(_ki.exit_hook(_wait_for_tasks_at_exit))
atexit.register(_ki.exit_hook(_report_failures_at_exit))
