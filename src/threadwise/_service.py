"""Services: the safe form of daemon threads. A background job that stops gracefully —
between iterations, never in the middle of one — when asked or when the program exits."""

from __future__ import annotations

import collections
import math
import os
import threading
import time
from collections.abc import Callable

from . import _ki
from ._cancel import CancelScope, sleep
from ._exceptions import Cancelled
from ._log import Logger
from ._task import Task, _LooseTask, abandon
from ._typing import Any, Literal, TypeVarTuple
from ._validate import check_callable, check_name, check_timeout

Ts = TypeVarTuple("Ts")
Restart = Literal["never", "on-failure"]
logger = Logger("threadwise")

# How many of the latest restart delays a service remembers: enough to see the backoff at
# work, bounded so that a service failing for days does not grow without limit.
RESTART_HISTORY = 100

# Services started and not yet stopped, stopped at interpreter exit. Guarded by the lock,
# as is the name counter (``next()`` on a shared ``itertools.count`` is not atomic without
# the GIL).
_running: set[Service] = set()
_running_lock = threading.Lock()
_last_number = 0


def _next_default_name() -> str:
    global _last_number
    with _running_lock:
        _last_number += 1
        return f"service-{_last_number}"


def _check_backoff(value: object, name: str) -> float:
    """Seconds >= 0; ``math.inf`` is kept as infinity (never 0, as ``or 0.0`` would make it)."""
    seconds = check_timeout(value, name)
    return math.inf if seconds is None else seconds


class Service:
    """Run ``fn(*args, **kwargs)`` in a background thread: once, or every ``interval`` s.

    ``stop(timeout)`` lets the current iteration finish (only the wait between iterations is
    cancelled), then waits; if the iteration outlives ``timeout`` it is cancelled too, and if
    it is stuck in code that cannot be cancelled it is abandoned with a warning. At interpreter
    exit every running service is stopped the same way with ``grace`` seconds, so a service
    writing a file never leaves it half-written because the program ended.

    Failures are logged with their traceback. ``restart="on-failure"`` runs ``fn`` again after
    a failure, waiting ``backoff`` seconds, doubling up to ``max_backoff``. ``math.inf`` is
    accepted for both: ``max_backoff=inf`` means no cap, ``backoff=inf`` means that after a
    failure the service waits until it is stopped. ``restart_delays`` holds the latest
    ``RESTART_HISTORY`` (100) delays.

    ``stop()`` may be called from inside ``fn``: the service then ends after the current
    iteration and ``stop()`` returns False at once (its thread is still running: the caller).
    A process forked while a service runs has no service thread: in the child the service is
    not running and ``stop()`` returns True at once.
    """

    def __init__(
        self,
        fn: Callable[[*Ts], object],
        /,
        *args: *Ts,
        interval: float | None = None,
        name: str | None = None,
        restart: Restart = "never",
        grace: float = 5.0,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
    ) -> None:
        check_callable(fn)
        self._fn: Callable[..., object] = fn
        self._args: tuple[Any, ...] = args
        self.interval = check_timeout(interval, "interval")
        self.name = check_name(name) or _next_default_name()
        if restart not in ("never", "on-failure"):
            raise ValueError(f"restart must be 'never' or 'on-failure', got {restart!r}")
        self.restart: Restart = restart
        grace_s = check_timeout(grace, "grace")
        self.grace = float("inf") if grace_s is None else grace_s
        self.backoff = _check_backoff(backoff, "backoff")
        self.max_backoff = _check_backoff(max_backoff, "max_backoff")
        self.iterations = 0
        self.failures = 0
        self.last_exception: BaseException | None = None
        self._delays: collections.deque[float] = collections.deque(maxlen=RESTART_HISTORY)
        self._task: Task[None] | None = None
        self._pid = os.getpid()
        self._idle = CancelScope(name=f"service {self.name!r} idle")
        self._stopping = False
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Service:
        with self._lock:
            if self._task is not None:
                raise RuntimeError(f"service {self.name!r} was already started")
            task = self._task = _LooseTask(self._main, self.name)
            self._pid = os.getpid()
        with _running_lock:
            _running.add(self)
        try:
            task._start_thread(register_live=False)
        except BaseException:
            # No thread ("can't start new thread"), or a Ctrl-C while Thread.start() waited
            # for a thread that did start: either way the caller was told the start failed,
            # so the service must not run on behind its back.
            with self._lock:
                self._stopping = True
                self._idle.cancel(f"service {self.name!r} failed to start")
            task.cancel(f"service {self.name!r} failed to start")
            with _running_lock:
                _running.discard(self)
            raise
        return self

    @property
    def restart_delays(self) -> list[float]:
        """The latest delays (seconds) waited before restarting after a failure, oldest first."""
        with self._lock:
            return list(self._delays)

    @property
    def running(self) -> bool:
        if self._pid != os.getpid():
            return False  # a forked child (checked first: the lock may have been held at fork)
        with self._lock:
            task = self._task
        return task is not None and not task.done()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop after the current iteration; True if the service thread has ended."""
        seconds = check_timeout(timeout)
        if self._pid != os.getpid():
            return True  # a forked child: the service thread exists only in the parent
        with self._lock:
            task = self._task
            if task is None:
                return True
            self._stopping = True
            self._idle.cancel(f"service {self.name!r} is stopping")
        if task._thread is threading.current_thread():
            # Called from fn itself: the loop ends after this iteration. Waiting here would
            # wait for ourselves. (Thread objects, not idents: a finished service thread's
            # ident is reused by threads started later.)
            return False
        finished = task._wait_finished(seconds, "ignore")
        if not finished:
            task.cancel(f"service {self.name!r} did not stop within {seconds} s")
            finished = task._wait_finished(1.0, "ignore")
        if finished:
            task.join()
        else:
            abandon([task], f"service {self.name!r} did not stop")
        with _running_lock:
            _running.discard(self)
        return finished

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(self.grace)

    # -- the loop --------------------------------------------------------------------------
    def _main(self) -> None:
        try:
            self._loop()
        finally:
            # Ended on its own (run once, failed, stopped from inside): nothing to stop at exit.
            with _running_lock:
                _running.discard(self)

    def _loop(self) -> None:
        delay = self.backoff
        while not self._stopping:
            started = time.monotonic()
            try:
                self._fn(*self._args)
                self.iterations += 1
            except Cancelled:
                if self._stopping or (self._task is not None and self._task._scope.cancelled):
                    return
                raise
            except Exception as exc:
                self.failures += 1
                self.last_exception = exc
                logger.error("service %r failed", self.name, exc_info=exc)
                if self.restart == "never":
                    return
                if time.monotonic() - started > max(delay, self.interval or 0.0) * 2:
                    delay = self.backoff  # it ran a good while: start the backoff over
                with self._lock:
                    self._delays.append(delay)
                if not self._idle_sleep(delay):
                    return
                delay = min(self.max_backoff, delay * 2)
                continue
            if self.interval is None:
                return
            if not self._idle_sleep(self.interval):
                return

    def _idle_sleep(self, seconds: float) -> bool:
        """Sleep between iterations; False when the service is stopping."""
        with self._lock:  # stop() sets _stopping and cancels _idle under the same lock
            if self._stopping:
                return False
            idle = self._idle = CancelScope(name=f"service {self.name!r} idle")
        with idle:
            sleep(seconds)
        return not idle.cancelled_caught and not self._stopping

    def __repr__(self) -> str:
        status = "running" if self.running else "stopped"
        return f"<threadwise.Service {self.name!r} {status}>"


def _forget_services_in_child() -> None:
    """After ``os.fork()`` the child has none of the parent's service threads: it must not
    wait for them at exit (nor warn that they were abandoned). The lock may have been held
    by another thread at the fork: the child gets a new one."""
    global _running_lock
    _running_lock = threading.Lock()
    _running.clear()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_services_in_child)


def _stop_services_at_exit() -> None:
    with _running_lock:
        services = list(_running)
    for service in services:
        service.stop(service.grace)


_register_atexit = getattr(threading, "_register_atexit", None)
if _register_atexit is not None:  # before the interpreter waits for threads
    _register_atexit(_ki.exit_hook(_stop_services_at_exit))
else:  # pragma: no cover
    import atexit

    atexit.register(_ki.exit_hook(_stop_services_at_exit))
