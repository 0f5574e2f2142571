"""Tasks: a function running in a thread, with a result, a state and a cancel scope."""

from __future__ import annotations

import atexit
import contextvars
import enum
import functools
import itertools
import logging
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from ._cancel import CancelMode, CancelScope
from ._exceptions import Cancelled, TaskCancelled
from ._local import close_thread_locals
from ._state import current_state
from ._sync import Event
from ._validate import check_callable, check_timeout, describe_callable

if TYPE_CHECKING:
    from ._group import TaskGroup

P = ParamSpec("P")
T = TypeVar("T")

logger = logging.getLogger("threadwise")


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
_counter = itertools.count(1)

# Failed tasks whose exception nobody has looked at yet; reported at exit if still unseen.
_failed_tasks: weakref.WeakSet[Task[Any]] = weakref.WeakSet()
# Tasks on threadwise's daemon threads that the interpreter should still wait for at exit.
_live_tasks: set[Task[Any]] = set()
_live_lock = threading.Lock()


class Task(Generic[T]):
    """A unit of work with a result. Create with ``spawn()`` or ``TaskGroup.spawn()``."""

    __slots__ = (
        "__weakref__",
        "_abandoned",
        "_call",
        "_callbacks",
        "_done",
        "_exception",
        "_finished",
        "_group",
        "_ident",
        "_live",
        "_lock",
        "_name",
        "_native_id",
        "_own_thread",
        "_result",
        "_retrieved",
        "_scope",
        "_started_at",
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
        self._scope = CancelScope(name=f"task {name!r}")
        self._scope._attach(parent_scope)
        self._state = State.CREATED
        self._result: T | None = None
        self._exception: BaseException | None = None
        self._retrieved = False
        self._abandoned = False
        # Made on first wait only: most tasks are collected by a group, never waited on alone.
        self._done: Event | None = None
        self._finished = False
        self._live = False  # registered in _live_tasks (waited for at interpreter exit)
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[Task[T]], None]] | None = []
        self._ident: int | None = None
        self._native_id: int | None = None
        self._started_at: float | None = None
        self._thread: threading.Thread | None = None
        self._own_thread = False  # True when the thread exists for this task alone

    # -- running ---------------------------------------------------------------------------
    def _run(self) -> None:
        """Run the task in the calling thread (a task thread or a group worker)."""
        with self._lock:
            if self._state is not State.CREATED:
                return  # cancelled before it could start
            self._ident = threading.get_ident()
            self._native_id = threading.get_native_id()
            self._started_at = time.monotonic()
            if self._scope._is_cancelled():
                # Its group was cancelled while it waited for a worker: it never starts.
                self._state = State.CANCELLED
                started = False
            else:
                self._state = State.RUNNING
                started = True
        if not started:
            self._finish()
            return
        state = current_state()
        previous_task, previous_scope = state.task, state.scope
        state.task, state.scope = self, self._scope
        state.since = time.monotonic()
        try:
            result = self._call()
        except Cancelled as exc:
            if self._scope._is_cancelled():
                self._state = State.CANCELLED
            else:  # raised by hand, not by a cancelled scope: that is a failure
                self._fail(exc)
        except BaseException as exc:
            self._fail(exc)
        else:
            self._result = result
            self._state = State.DONE
        finally:
            state.task, state.scope = previous_task, previous_scope
        self._finish()

    def _fail(self, exc: BaseException) -> None:
        self._exception = exc
        self._state = State.FAILED
        _failed_tasks.add(self)

    def _finish(self) -> None:
        self._scope._detach()
        with self._lock:
            self._finished = True
            event = self._done
            callbacks, self._callbacks = self._callbacks or [], None
        if event is not None:
            event.set()
        for callback in callbacks:
            callback(self)
        if self._live:
            with _live_lock:
                _live_tasks.discard(self)

    def _wait_finished(self, timeout: float | None, cancel: CancelMode = "raise") -> bool:
        """Wait until the task has finished (True) or ``timeout`` passed (False)."""
        if self._finished:
            return True
        with self._lock:
            event = self._done
            if event is None:
                event = self._done = Event(name=f"done of task {self._name!r}")
                if self._finished:
                    event.set()
        return event._wait(timeout, cancel)

    def _add_done_callback(self, callback: Callable[[Task[T]], None]) -> None:
        with self._lock:
            if self._callbacks is not None:
                self._callbacks.append(callback)
                return
        callback(self)  # already finished

    def _set_blocked(self, blocked: bool) -> None:
        if self._state is State.RUNNING or self._state is State.BLOCKED:
            self._state = State.BLOCKED if blocked else State.RUNNING

    def _run_and_close(self) -> None:
        try:
            self._run()
        finally:
            close_thread_locals()  # the thread ends here: release its per-thread resources

    def _start_thread(self, *, register_live: bool) -> None:
        thread = threading.Thread(target=self._run_and_close, name=self._name, daemon=True)
        self._thread = thread
        self._own_thread = True
        if register_live:
            self._live = True
            with _live_lock:
                _live_tasks.add(self)
        thread.start()

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
        if self._state is not State.BLOCKED or self._ident is None:
            return None
        from ._state import all_states

        state = all_states().get(self._ident)
        return None if state is None else state.describe_blocked_on()

    def done(self) -> bool:
        return self._state in _FINISHED

    def cancelled(self) -> bool:
        return self._state is State.CANCELLED

    def cancel(self, reason: str | None = None) -> bool:
        """Cancel the task: it never starts, or its next checkpoint raises ``Cancelled``.

        Returns False if the task had already finished.
        """
        why = reason or f"task {self._name!r} was cancelled"
        with self._lock:
            if self._state in _FINISHED:
                return False
            not_started = self._state is State.CREATED
            if not_started:
                self._state = State.CANCELLED
        self._scope.cancel(why)
        if not_started:
            self._finish()
        return True

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the task has finished; True if it has. Cancellable."""
        seconds = check_timeout(timeout)
        if not self._wait_finished(seconds):
            return False
        thread = self._thread
        if self._own_thread and thread is not None and thread is not threading.current_thread():
            thread.join()  # the thread is past the task's last line: this is immediate
        return True

    def _wait_done(self, timeout: float | None) -> None:
        if not self.join(timeout):
            raise TimeoutError(
                f"task {self._name!r} did not finish within {timeout} s (it is still running)"
            )

    def result(self, timeout: float | None = None) -> T:
        """The return value; re-raises the task's exception with its original traceback.

        Raises the builtin ``TimeoutError`` if the task is not done in time and
        ``TaskCancelled`` if it was cancelled.
        """
        self._wait_done(timeout)
        self._retrieved = True
        if self._state is State.CANCELLED:
            raise TaskCancelled(f"task {self._name!r} was cancelled")
        exc = self._exception
        if exc is not None:
            try:
                raise exc
            finally:
                del exc  # no frame -> exception -> frame cycle
        return self._result  # type: ignore[return-value]

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The exception the task raised, or None if it returned normally."""
        self._wait_done(timeout)
        self._retrieved = True
        if self._state is State.CANCELLED:
            raise TaskCancelled(f"task {self._name!r} was cancelled")
        return self._exception

    def __repr__(self) -> str:
        return f"<threadwise.Task {self._name!r} {self._state.name}>"

    def __del__(self) -> None:
        if self._exception is not None and not self._retrieved:
            _report_unretrieved(self)


def _report_unretrieved(task: Task[Any]) -> None:
    task._retrieved = True
    exc = task._exception
    if exc is None:
        return
    logger.error(
        "task %r failed and its exception was never retrieved",
        task._name,
        exc_info=(type(exc), exc, exc.__traceback__),
    )


def _new_name(fn: Callable[..., Any]) -> str:
    return f"{describe_callable(fn)}-{next(_counter)}"


def _bind(fn: Callable[P, T], args: Any, kwargs: Any) -> Callable[[], T]:
    """``fn(*args, **kwargs)`` to run later in a copy of the caller's contextvars context."""
    context = contextvars.copy_context()

    def call() -> T:
        return context.run(fn, *args, **kwargs)

    return call


def spawn(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Task[T]:
    """Start ``fn(*args, **kwargs)`` in a new thread now and return its ``Task``.

    The task runs in a copy of the caller's ``contextvars`` context. Rename it with
    ``Task`` names via a ``TaskGroup`` or keep the default ``<function name>-<n>``.
    """
    check_callable(fn)
    task: Task[T] = Task(_bind(fn, args, kwargs), _new_name(fn))
    task._start_thread(register_live=True)
    return task


# -- threading.Thread, with results ------------------------------------------------------------


def _capture_run(run: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(run)
    def wrapper(self: Thread, *args: Any, **kwargs: Any) -> Any:
        if self._tw_in_run:  # super().run() from an override: plain call
            return run(self, *args, **kwargs)
        self._tw_in_run = True
        try:
            task = self._tw_task
            task._name = self.name
            task._call = functools.partial(self._tw_context.run, run, self, *args, **kwargs)
            task._run()
        finally:
            self._tw_in_run = False
            if threading.current_thread() is self:
                close_thread_locals()
        return task._result

    return wrapper


class Thread(threading.Thread):
    """A drop-in ``threading.Thread`` that keeps ``run()``'s return value and exception.

    Works with ``target=`` and with subclasses that override ``run``; adds ``result()``,
    ``exception()``, ``state``, ``cancel()`` and ``cancelled()`` as on ``Task``.
    """

    _tw_task: Task[Any]
    _tw_context: contextvars.Context
    _tw_in_run: bool

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
        self._tw_task = Task(lambda: None, self.name)
        self._tw_context = contextvars.copy_context()
        self._tw_in_run = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "run" in cls.__dict__:
            cls.run = _capture_run(cls.__dict__["run"])  # type: ignore[method-assign]

    def start(self) -> None:
        self._tw_context = contextvars.copy_context()
        super().start()

    @_capture_run
    def run(self) -> Any:
        target = getattr(self, "_target", None)
        if target is None:
            return None
        try:
            return target(*self._args, **self._kwargs)  # type: ignore[attr-defined]
        finally:
            del self._target, self._args, self._kwargs  # type: ignore[attr-defined]

    def _require_started(self, what: str) -> None:
        if not self._started.is_set() and self._tw_task._state is not State.CANCELLED:  # type: ignore[attr-defined]
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


# -- interpreter exit ------------------------------------------------------------------------

EXIT_GRACE = 1.0


def abandon(tasks: list[Task[Any]], why: str) -> None:
    """Stop waiting for tasks stuck in code that cannot be cancelled, and say so by name."""
    if not tasks:
        return
    with _live_lock:
        for task in tasks:
            task._abandoned = True
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
    for task in list(_failed_tasks):
        if not task._retrieved:
            _report_unretrieved(task)


_register_atexit = getattr(threading, "_register_atexit", None)
if _register_atexit is not None:  # runs before the interpreter joins non-daemon threads
    _register_atexit(_wait_for_tasks_at_exit)
else:  # pragma: no cover - every supported CPython has it
    atexit.register(_wait_for_tasks_at_exit)
atexit.register(_report_failures_at_exit)
