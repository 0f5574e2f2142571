"""The asyncio bridge: run blocking code in a thread that asyncio cancellation reaches.

* ``await run_sync(fn, *args)`` runs ``fn(*args)`` in a worker thread as a threadwise task.
  Cancelling the awaiting asyncio task (``task.cancel()``, ``asyncio.timeout`` expiring)
  cancels the task's scope, so a threadwise blocking call in ``fn`` raises ``Cancelled`` at
  once; the await raises ``CancelledError`` after the thread has left ``fn``. The deadline
  of an enclosing ``asyncio.timeout`` is the task's deadline too: ``tw.remaining()`` in
  ``fn`` reads it.
* ``run(coro_fn, *args)``, called in such a thread, runs ``coro_fn(*args)`` on the event loop
  that awaits the thread and returns its result; cancelling the thread's scope cancels the
  coroutine.

Stdlib ``asyncio`` only.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, TypeVarTuple, Unpack

from . import _threads
from ._cancel import Waiter, block, current_scope
from ._exceptions import Cancelled
from ._executor import Executor
from ._task import Task, _LooseTask, _new_name
from ._validate import check_callable, describe_callable

P = ParamSpec("P")
T = TypeVar("T")
Ts = TypeVarTuple("Ts")

__all__ = ["run", "run_sync"]

# The loop awaiting the current thread; set in the context the thread's function runs in.
_loop: contextvars.ContextVar[asyncio.AbstractEventLoop] = contextvars.ContextVar(
    "threadwise.aio loop"
)


def _asyncio_deadline(loop: asyncio.AbstractEventLoop) -> float | None:
    """The nearest ``asyncio.timeout`` deadline of the current task, on ``time.monotonic()``.

    asyncio has no public way to ask; its ``Timeout`` schedules ``_on_timeout`` on the loop,
    so look for those timers (a loop without the ``_scheduled`` heap gives None).
    """
    task = asyncio.current_task(loop)
    scheduled = getattr(loop, "_scheduled", None)
    if task is None or not scheduled:
        return None
    nearest: float | None = None
    for handle in scheduled:
        callback = getattr(handle, "_callback", None)
        owner = getattr(callback, "__self__", None)
        if (
            isinstance(owner, asyncio.Timeout)
            and getattr(owner, "_task", None) is task
            and not handle.cancelled()
            and (nearest is None or handle.when() < nearest)
        ):
            nearest = handle.when()
    if nearest is None:
        return None
    return time.monotonic() + (nearest - loop.time())


class _Wakeup:
    """Resolves whichever asyncio future the coroutine waits on now, from the loop thread."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future

    def __call__(self) -> None:
        if not self.future.done():
            self.future.set_result(None)


async def run_sync(
    fn: Callable[[Unpack[Ts]], T], /, *args: *Ts, executor: Executor | None = None
) -> T:
    """Run ``fn(*args)`` in a worker thread (of ``executor``, or threadwise's thread cache)
    and return its result. Cancelling the await cancels the thread's scope and waits for
    ``fn`` to return or raise, so no thread keeps running work nobody waits for.
    """
    check_callable(fn)
    if executor is not None and not isinstance(executor, Executor):
        raise TypeError(f"executor must be a threadwise.Executor or None, got {executor!r}")
    loop = asyncio.get_running_loop()
    deadline = _asyncio_deadline(loop)
    context = contextvars.copy_context()
    context.run(_loop.set, loop)
    call = functools.partial(context.run, fn, *args)
    wakeup = _Wakeup(loop.create_future())

    def finished(_: object) -> None:
        loop.call_soon_threadsafe(wakeup)

    if executor is None:
        task: Task[T] = _LooseTask(call, _new_name(fn))
        if deadline is not None:
            task._scope._deadline = task._scope._own_deadline = deadline
        task._add_done_callback(finished)
        _threads.start_thread_soon(task._run, name=f"aio.run_sync {task.name}")
        cancel: Callable[[], object] = functools.partial(
            task.cancel, "the awaiting asyncio task was cancelled"
        )
        done, cancelled, outcome = task.done, task.cancelled, task.result
    else:
        future = executor._submit(call, fn, deadline)
        future.add_done_callback(finished)
        cancel, done, cancelled, outcome = (
            future.cancel,
            future.done,
            future.cancelled,
            future.result,
        )
    try:
        await wakeup.future
    except asyncio.CancelledError:
        cancel()
        # Wait for the thread to leave fn; a repeated cancel does not stop that wait.
        while not done():
            wakeup.future = loop.create_future()
            try:
                await wakeup.future
            except asyncio.CancelledError:
                continue
        raise
    if cancelled() and deadline is not None:
        # The thread saw the asyncio deadline pass before the loop's timer fired: let the
        # timer cancel us, so asyncio.timeout turns it into its TimeoutError.
        while True:
            await asyncio.sleep(max(0.0, deadline - time.monotonic()) + 0.001)
    return outcome()


class _Coroutine:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def _describe_wait(self, verb: str) -> str:
        return f"{verb} {self._name}"


def run(coro_fn: Callable[P, Coroutine[Any, Any, T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """From a thread started by ``run_sync``: run ``coro_fn(*args)`` on the event loop that
    awaits this thread and return its result. Cancelling this thread's scope (for instance
    the asyncio task awaiting ``run_sync`` being cancelled) cancels the coroutine."""
    check_callable(coro_fn, "coro_fn")
    try:
        loop = _loop.get()
    except LookupError:
        raise RuntimeError(
            "tw.aio.run() works only in a thread started by tw.aio.run_sync(); "
            "from other threads use asyncio.run_coroutine_threadsafe(coro, loop)"
        ) from None
    scope = current_scope()
    if scope is not None and scope._is_cancelled():
        raise scope._cancelled_error()
    coro = coro_fn(*args, **kwargs)
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    waiter = Waiter()
    future.add_done_callback(lambda _: waiter.wake())
    blocked_on = (_Coroutine(describe_callable(coro_fn)), "aio.run")
    try:
        block(waiter, None, blocked_on)
    except Cancelled:
        future.cancel()
        # The coroutine handles its cancellation on the loop; wait until it has.
        block(waiter, None, blocked_on, cancel="ignore")
        raise
    return future.result()
