"""TaskGroup: structured concurrency for threads. Nothing started inside outlives the block."""

from __future__ import annotations

import enum
import itertools
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from contextvars import copy_context
from functools import partial
from threading import Lock
from types import TracebackType

from . import _ki
from ._cancel import CancelScope, Waiter, block
from ._exceptions import Cancelled
from ._local import close_thread_locals
from ._log import Logger
from ._state import current_state
from ._sync import ParkingLot
from ._task import (
    EXIT_GRACE,
    Task,
    _abandon_thread,
    _join_thread,
    _release_job,
    abandon,
    next_task_number,
)
from ._threads import cache as _thread_cache
from ._typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from ._validate import (
    check_callable,
    check_name,
    check_positive_int,
    check_timeout,
    describe_callable,
)

if TYPE_CHECKING:
    from typing import NoReturn

P = ParamSpec("P")
T = TypeVar("T")

logger = Logger("threadwise")
_next_group_number = itertools.count(1).__next__  # see next_task_number


class _Phase(enum.Enum):
    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


# Module globals: on Python 3.11 every ``_Phase.X`` is a Python call (the enum metaclass's
# __getattr__), and a group reads its phase on every spawn.
_NEW = _Phase.NEW
_OPEN = _Phase.OPEN
_CLOSED = _Phase.CLOSED


class _OnCancel:
    """In the waiters of a group's scope while its block runs: the scope's cancel (its own,
    or an enclosing scope's) calls ``wake``, which passes it on to the group's tasks.

    A task's scope is not a child of the group's scope in the scope tree: attaching it and
    detaching it would take the tree's lock twice per task. The group cancels its tasks
    itself instead: it knows them (``_running``), under a lock it takes anyway.
    """

    __slots__ = ("_group",)

    def __init__(self, group: TaskGroup) -> None:
        self._group = group

    def wake(self) -> None:
        self._group._pass_cancel_on()


class TaskGroup:
    """Run tasks in threads; on exit of the ``with`` block every one of them has finished.

    * The first failure cancels the other tasks (queued ones never start); failures are raised
      together as an ``ExceptionGroup``. Cancelled tasks are not failures.
    * ``timeout`` cancels the group after that many seconds and raises ``TimeoutError``.
    * An exception or Ctrl-C in the block cancels the tasks too.
    * Tasks get ``grace`` seconds to react to a cancellation; one still stuck in code that
      cannot be cancelled (``time.sleep``, a socket read) is reported by name as abandoned,
      and its daemon thread does not keep the process alive.
    * ``max_workers=None`` gives each task its own thread; a number bounds the threads, and
      tasks queue for them.
    """

    __slots__ = (
        "__weakref__",
        "_busy",
        "_exit_waiter",
        "_failures",
        "_grace",
        "_hook",
        "_idle",
        "_lent",
        "_lock",
        "_max_workers",
        "_name",
        "_pending",
        "_phase",
        "_queue",
        "_running",
        "_scope",
        "_scope_left",
        "_started",
        "_stopping",
        "_threads",
        "_timed_out",
        "_timeout",
    )

    def __init__(
        self,
        name: str | None = None,
        *,
        max_workers: int | None = None,
        timeout: float | None = None,
        grace: float = 1.0,
    ) -> None:
        if name is not None:
            check_name(name)
        if not name:
            name = f"TaskGroup-{_next_group_number()}"
        self._name: str = name
        self._max_workers = (
            None
            if max_workers is None
            else check_positive_int(max_workers, "max_workers", allow_none=True)
        )
        self._timeout = None if timeout is None else check_timeout(timeout)
        if type(grace) is float and 0.0 <= grace < math.inf:
            self._grace = grace  # the common case (the default): what check_timeout gives
        else:
            grace_value = check_timeout(grace, "grace")
            self._grace = math.inf if grace_value is None else grace_value
        self._phase = _NEW
        self._lock = threading.Lock()
        # While the block's exit waits for the tasks: what wakes it (only the thread of the
        # block ever waits there, so one waiter, not a parking lot).
        self._exit_waiter: Waiter | None = None
        self._pending = 0
        self._running: set[Task[Any]] = set()
        self._failures: list[BaseException] = []
        # Unbounded mode: the tasks started on cached threads, joined (their jobs) at exit.
        self._started: list[Task[Any]] = []
        # CancelScope(name=...) without its checks (made here: a str, no deadline).
        self._scope = CancelScope._child(None, f"TaskGroup {self._name!r}")
        self._scope_left = False  # the block's exit took the scope off the thread's stack
        # While the block runs: in the scope's waiters, passes its cancel on (see _OnCancel).
        self._hook: _OnCancel | None = None
        self._timed_out = False
        self._stopping = False
        # Bounded mode: queued tasks, parked idle workers, and the worker threads. Made only
        # for a bounded group (most groups are not, and a group's fixed cost counts).
        self._queue: deque[Task[Any]] | None = None
        self._idle: ParkingLot | None = None
        self._threads: list[threading.Thread] | None = None
        if self._max_workers is not None:
            self._queue = deque()
            self._idle = ParkingLot()
            self._threads = []
        # Workers running a task, and how many of those wait on a task of this group (they
        # do not count against max_workers while they wait: see _lend_slot).
        self._busy = 0
        self._lent = 0

    # -- public ----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def max_workers(self) -> int | None:
        return self._max_workers

    @property
    def cancel_called(self) -> bool:
        return self._scope.cancel_called

    def cancel(self, reason: str | None = None) -> None:
        """Cancel every task of the group (and the block's own threadwise waits)."""
        if reason is not None and not isinstance(reason, str):
            raise TypeError(f"reason must be a str or None, got {reason!r}")
        self._scope.cancel(reason or f"{self._describe()} was cancelled")
        self._drop_queued()

    def spawn(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Task[T]:
        """Start ``fn(*args, **kwargs)`` as a task of this group (also from its own tasks)."""
        if not callable(fn):
            check_callable(fn)  # raises
        # _bind and _new_name (with describe_callable), inlined: one spawn per task.
        run: Callable[..., Any] = copy_context().run
        call: Callable[[], T] = partial(run, fn, *args, **kwargs)
        try:
            label = fn.__qualname__  # a function's (a plain attribute read: cheaper)
        except AttributeError:
            label = None
        if type(label) is not str or not label:
            label = describe_callable(fn)
        number = next_task_number()
        # The locks below are taken without `with` (a `with` makes two bound methods and
        # parses arguments: half again as much as the lock round trip itself); Ctrl-C waits
        # until spawn has returned (see _ki and the end of this module).
        task: Task[T] = Task(call, f"{label}-{number}", group=self)
        if self._max_workers is not None:
            return self._queue_task(task)
        # Unbounded: the task starts on a thread of the thread cache at once.
        job = task._job = Lock()  # task._prepare_thread(cached=True), inlined
        task._own_thread = True
        lock = self._lock
        lock.acquire()
        try:
            if self._phase is not _OPEN:
                self._refuse_spawn()
            # The group's cancel reaches the tasks in _running (see _OnCancel), under this
            # lock: a cancel either finds the task there or was seen here.
            scope = self._scope
            if scope._cancelled:
                task._scope._cancelled = True
                task._scope._reason = scope._reason
            self._pending += 1
            self._running.add(task)
            if len(self._started) >= 64:
                self._prune_started()
            self._started.append(task)
        finally:
            lock.release()
        try:  # task._start_prepared(register_live=False), inlined
            _thread_cache.start_thread_soon(task._run_and_close, _release_job, task._name, job)
        except RuntimeError:  # can't start new thread: the task never runs
            task._job = None
            task._own_thread = False
            with self._lock:
                self._started.remove(task)
            self._forget(task)
            raise
        return task

    def _queue_task(self, task: Task[T]) -> Task[T]:
        """spawn() in a bounded group: queue the task for the group's workers."""
        with self._lock:
            if self._phase is not _OPEN:
                self._refuse_spawn()
            scope = self._scope
            if scope._cancelled:  # as in spawn()
                task._scope._cancelled = True
                task._scope._reason = scope._reason
            self._pending += 1
            self._running.add(task)
            assert self._queue is not None
            self._queue.append(task)
            worker = self._worker_needed()
        if worker is not None:
            self._start_worker(worker, task)
        return task

    def _refuse_spawn(self) -> NoReturn:
        if self._phase is _NEW:
            raise RuntimeError(
                f"{self._describe()} was not entered: use `with TaskGroup() as g: g.spawn(fn, ...)`"
            )
        raise RuntimeError(f"{self._describe()} has exited; it cannot start new tasks")

    def _worker_needed(self) -> threading.Thread | None:
        """With the lock held, after queueing: wake an idle worker or make a new one."""
        assert self._max_workers is not None
        assert self._idle is not None
        assert self._threads is not None
        if self._busy - self._lent >= self._max_workers:
            return None  # every slot is taken: a finishing worker takes the task
        if self._idle.unpark_one() or len(self._threads) >= self._max_workers + self._lent:
            return None
        worker = threading.Thread(
            target=self._work, name=f"{self._name}-worker-{len(self._threads) + 1}", daemon=True
        )
        self._threads.append(worker)
        return worker

    def _start_worker(self, worker: threading.Thread, task: Task[Any] | None) -> None:
        assert self._threads is not None
        assert self._queue is not None
        try:
            worker.start()
        except RuntimeError:
            # The thread could not be started. Unless another worker already took it, the
            # task is taken back so that it never runs later behind the caller's back.
            with self._lock:
                self._threads.remove(worker)
                queued = task is not None and task in self._queue
                if queued:
                    assert task is not None
                    self._queue.remove(task)
                stranded = [] if self._threads else list(self._queue)
                if stranded:
                    self._queue.clear()
            if queued:
                assert task is not None
                self._forget(task)
            for other in stranded:  # queued by earlier spawns, and no worker is left to run them
                other.cancel(f"{self._describe()} could not start a worker thread")
            if queued:
                raise

    def _forget(self, task: Task[Any]) -> None:
        """Undo spawn() for a task whose thread could not be started."""
        task._abort_start()
        with self._lock:
            self._pending -= 1
            self._running.discard(task)
            if self._pending == 0:
                self._wake_exit()

    def _lend_slot(self) -> None:
        """The calling task (of this group) waits on another task of this group: while it
        waits it does not count against max_workers, so the awaited task can run."""
        if self._max_workers is None:
            return
        with self._lock:
            self._lent += 1
            worker = self._worker_needed() if self._queue else None
        if worker is not None:
            self._start_worker(worker, None)

    def _reclaim_slot(self) -> None:
        if self._max_workers is None:
            return
        with self._lock:
            self._lent -= 1

    # -- workers and bookkeeping -------------------------------------------------------------
    def _work(self) -> None:
        try:
            self._work_loop()
        finally:
            close_thread_locals()

    def _work_loop(self) -> None:
        me = threading.current_thread()
        lock = self._lock
        limit = self._max_workers
        queue = self._queue
        idle = self._idle
        assert limit is not None
        assert queue is not None
        assert idle is not None
        with lock:
            while True:
                while not queue or self._busy - self._lent >= limit:
                    if self._stopping:
                        return
                    idle.park(lock, None, None, cancel="ignore")
                task = queue.popleft()
                task._thread = me
                self._busy += 1
                lock.release()
                try:
                    task._run()
                finally:
                    lock.acquire()
                    self._busy -= 1

    def _prune_started(self) -> None:
        # Keep the list of started tasks from growing without bound in long-lived groups.
        if len(self._started) & (len(self._started) - 1) == 0:
            self._started = [t for t in self._started if t._thread_alive()]

    def _on_task_failed(self, task: Task[Any]) -> None:
        """After a task's failure was counted (``Task._finish`` does the bookkeeping of a
        task's end, under the lock the group shares with its tasks): cancel the others."""
        self._scope.cancel(f"task {task.name!r} of {self._describe()} failed: {task._exception!r}")
        self._drop_queued()

    def _drop_queued(self) -> None:
        if self._queue is None:
            return  # unbounded: nothing is ever queued
        with self._lock:
            queued = list(self._queue)
            self._queue.clear()
        for task in queued:
            task.cancel(f"{self._describe()} was cancelled before task {task.name!r} started")

    # -- the with block ------------------------------------------------------------------------
    def __enter__(self) -> TaskGroup:
        # Under the lock until the group is open: a spawn (from another thread) sees the
        # scope's deadline and its hook in place.
        with self._lock:
            if self._phase is not _NEW:
                raise RuntimeError(f"{self._describe()} can be entered only once")
            if self._timeout is not None:
                self._scope._own_deadline = self._scope._deadline = time.monotonic() + self._timeout
            hook = self._hook = _OnCancel(self)
            self._scope._enter_with(hook)
            self._phase = _OPEN
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        try:
            return self._exit(exc)
        finally:
            # Whatever happens above (a second Ctrl-C included), the group's scope leaves the
            # thread's scope stack here, so it cannot cancel what runs after the block.
            # (The phase only ever moves on to CLOSED: reading it unlocked is safe here.)
            if self._phase is not _CLOSED:
                self._close(join=False)
            if not self._scope_left:
                self._pop_scope()

    def _pop_scope(self) -> None:
        scope = self._scope
        if current_state().scope is scope or scope._on_stack():
            scope._leave(self._hook)
            self._scope_left = True
            self._hook = None  # (it refers to the group: no cycle left behind)

    def _pass_cancel_on(self) -> None:
        """The group's scope was cancelled (by ``cancel()``, a failure, its timeout, or an
        enclosing scope): cancel the tasks' scopes, and wake the exit's wait."""
        if not self._scope._cancelled:
            return
        with self._lock:
            tasks = list(self._running)
            self._wake_exit()
        reason = self._scope._reason
        for task in tasks:
            task._scope._cancel_as_child(reason)

    def _exit(self, exc: BaseException | None) -> bool:
        if exc is not None and not isinstance(exc, Cancelled):
            self.cancel(f"the body of {self._describe()} raised {exc!r}")
        interrupt: BaseException | None = exc if isinstance(exc, KeyboardInterrupt) else None
        try:
            stuck = self._cancel_and_wait_grace() if interrupt is not None else self._wait_all()
        except KeyboardInterrupt as ki:
            interrupt = ki
            stuck = self._cancel_and_wait_grace()
        own = self._scope._own_deadline
        if own is not None and not self._scope._cancel_called and time.monotonic() >= own:
            self._timed_out = True  # tasks saw the deadline themselves before we did
        try:
            self._close(join=True, stuck=stuck)
        except KeyboardInterrupt as ki:
            interrupt = ki  # Ctrl-C while joining finished threads: stop joining, report
        self._pop_scope()

        failures = self._failures
        if interrupt is not None:
            for failure in failures:
                logger.error(
                    "%s: a task failed before Ctrl-C",
                    self._describe(),
                    exc_info=(type(failure), failure, failure.__traceback__),
                )
            abandon(stuck, f"{self._describe()} was interrupted (Ctrl-C)")
            if interrupt is exc:
                return False
            raise interrupt
        if not stuck:
            pass
        elif self._timed_out:
            abandon(stuck, f"{self._describe()} timed out after {self._timeout:g} s")
        else:
            abandon(stuck, f"{self._describe()} was cancelled")
        if failures:
            errors = list(failures)
            if exc is not None and not isinstance(exc, Cancelled):
                errors.insert(0, exc)
            n = len(failures)
            raise BaseExceptionGroup(
                f"{n} task{'s' if n > 1 else ''} of {self._describe()} failed", errors
            )
        if exc is not None and not isinstance(exc, Cancelled):
            return False
        if self._timed_out:
            raise TimeoutError(
                f"{self._describe()} did not finish within {self._timeout:g} s; "
                "its tasks were cancelled"
            ) from None
        if isinstance(exc, Cancelled):
            return self._scope._caught_own()
        if self._scope._is_cancelled() and not self._scope._caught_own():
            # An enclosing scope was cancelled while we waited: the code after the block must
            # not run as if the tasks had finished, so act as a checkpoint.
            raise self._scope._cancelled_error()
        return False

    def _wait_all(self) -> list[Task[Any]]:
        """Wait for every task; on cancellation allow ``grace`` seconds, then give up on the
        stuck ones and return them."""
        scope = self._scope
        grace_end: float | None = None
        dropped = False
        while True:
            # What to do outside the lock: cancelling takes it (see _pass_cancel_on).
            time_out = drop = False
            with self._lock:
                while self._pending:
                    now = time.monotonic()
                    own = scope._own_deadline
                    if own is not None and now >= own and not scope._cancel_called:
                        time_out = True
                        break
                    if scope._is_cancelled():
                        if not dropped:
                            drop = dropped = True
                            break
                        if grace_end is None:
                            grace_end = now + self._grace
                        elif now >= grace_end:
                            return list(self._running)
                        limit: float | None = grace_end
                    else:
                        limit = scope._deadline
                    timeout = None if limit is None else max(0.0, limit - now)
                    # Not registered with the scope: a cancel wakes it through _pass_cancel_on.
                    self._park_exit(timeout)
                else:
                    return []
            if time_out:
                self._timed_out = True
                scope.cancel(f"{self._describe()} timed out after {self._timeout:g} s")
            elif drop:
                self._drop_queued()

    def _park_exit(self, timeout: float | None) -> None:
        """With the lock held: release it and wait until the last task has ended, a cancel
        reached the group, or ``timeout`` passed; then take the lock again."""
        waiter = self._exit_waiter = Waiter()
        lock = self._lock
        lock.release()
        try:
            block(waiter, timeout, (self, "exit"), cancel="ignore")
        finally:
            lock.acquire()
            self._exit_waiter = None

    def _wake_exit(self) -> None:
        """With the lock held: wake the exit's wait, if it waits."""
        waiter = self._exit_waiter
        if waiter is not None:
            self._exit_waiter = None
            waiter.wake()

    def _cancel_and_wait_grace(self) -> list[Task[Any]]:
        self.cancel(f"{self._describe()} was interrupted (Ctrl-C)")
        # Again, in case the Ctrl-C cut short an earlier cancel of the scope before it was
        # passed on (this cancel then returned at once); a task already cancelled stays so.
        self._pass_cancel_on()
        end = time.monotonic() + self._grace
        try:
            with self._lock:
                while self._pending:
                    left = end - time.monotonic()
                    if left <= 0:
                        break
                    self._park_exit(left)
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: stop waiting now
        with self._lock:
            return list(self._running)

    def _close(self, *, join: bool, stuck: list[Task[Any]] | None = None) -> None:
        with self._lock:
            if self._phase is _CLOSED:
                return
            self._phase = _CLOSED
            self._stopping = True
            if self._idle is not None and self._idle._waiters:
                self._idle.unpark_all()
            threads = list(self._threads) if self._threads else None
            # Taken, not copied: the tasks refer to their group, and a group still holding
            # them after its exit would be a reference cycle, freed only by the garbage
            # collector (many short-lived groups then pile up and make its runs slow).
            started, self._started = self._started, []
        if not join:
            return
        # Every task has finished (or is abandoned): the threads are past the task's last
        # line, closing their ThreadLocal instances. A close that blocks must not hang the
        # exit: wait at most the grace period, then report the thread as abandoned.
        end: float | None = None
        for task in started:
            job = task._job
            if job is None or not job.locked() or (stuck and task in stuck):
                continue  # the common case: its worker is free again
            if end is None:
                end = self._join_end()
            if not task._join_own_thread(max(0.0, end - time.monotonic())):
                _abandon_thread(task._name, f"{self._describe()} exited")
        if threads is None:
            return
        me = threading.current_thread()
        stuck_threads = {t._thread for t in stuck} if stuck else ()
        for thread in threads:
            if thread in stuck_threads or thread is me:
                continue
            if end is None:
                end = self._join_end()
            if not _join_thread(thread, max(0.0, end - time.monotonic())):
                _abandon_thread(thread.name, f"{self._describe()} exited")

    def _join_end(self) -> float:
        return time.monotonic() + (EXIT_GRACE if math.isinf(self._grace) else self._grace)

    # -- display -----------------------------------------------------------------------------
    def _describe(self) -> str:
        return f"TaskGroup {self._name!r}"

    def _describe_wait(self, verb: str) -> str:
        return f"{self._describe()} {verb}, waiting for {self._pending} task(s)"

    def __repr__(self) -> str:
        return f"<threadwise.{self._describe()} {self._phase.value} pending={self._pending}>"


# Ctrl-C waits until a cancel has reached every task (see _ki): cut short, it would leave the
# group's scope cancelled and some tasks not, and no later cancel of the scope would pass it on.
_ki.protected(_OnCancel.wake)
_ki.protected(TaskGroup.spawn)
_ki.protected(TaskGroup._queue_task)
_ki.protected(TaskGroup._pass_cancel_on)
# Ctrl-C lands in the wait itself (_cancel._park), never between taking the lock back and
# forgetting the waiter, nor between making the waiter and releasing the lock.
_ki.protected(TaskGroup._park_exit)
