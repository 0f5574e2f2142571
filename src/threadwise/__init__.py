"""threadwise: threads that are safe, observable and fast.

Tasks return results and re-raise their errors, groups never leak threads, cancellation and
deadlines reach every blocking call threadwise provides.
"""

from __future__ import annotations

import typing as _typing

from ._cancel import (
    CancelScope,
    checkpoint,
    current_scope,
    fail_after,
    move_on_after,
    remaining,
    sleep,
)
from ._debug import LockOrderViolation, debug
from ._debug import violations as lock_order_violations
from ._exceptions import Cancelled, CancelledTooLate, DeadlockError, QueueClosed, TaskCancelled
from ._executor import Executor
from ._group import TaskGroup
from ._inspect import ThreadInfo, Watchdog, dump, dump_on_signal, threads, watchdog
from ._local import ThreadLocal
from ._map import map
from ._pipeline import Pipeline
from ._progress import ProgressInfo
from ._report import PipelineReport, StageReport
from ._service import Service
from ._sync import (
    Barrier,
    BoundedSemaphore,
    Condition,
    Event,
    LifoQueue,
    Lock,
    PriorityQueue,
    Queue,
    RLock,
    Semaphore,
)
from ._task import State, Task, Thread, spawn
from ._version import __version__

if _typing.TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from . import aio as aio  # the asyncio bridge: tw.aio.run_sync, tw.aio.run


def __getattr__(name: str) -> object:
    # tw.aio is imported on first use: asyncio alone takes longer to import than the rest of
    # threadwise, and most programs (and `threadwise --help`) never touch it.
    if name == "aio":
        import importlib

        return importlib.import_module(".aio", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Barrier",
    "BoundedSemaphore",
    "CancelScope",
    "Cancelled",
    "CancelledTooLate",
    "Condition",
    "DeadlockError",
    "Event",
    "Executor",
    "LifoQueue",
    "Lock",
    "LockOrderViolation",
    "Pipeline",
    "PipelineReport",
    "PriorityQueue",
    "ProgressInfo",
    "Queue",
    "QueueClosed",
    "RLock",
    "Semaphore",
    "Service",
    "StageReport",
    "State",
    "Task",
    "TaskCancelled",
    "TaskGroup",
    "Thread",
    "ThreadInfo",
    "ThreadLocal",
    "Watchdog",
    "__version__",
    "checkpoint",
    "current_scope",
    "debug",
    "dump",
    "dump_on_signal",
    "fail_after",
    "lock_order_violations",
    "map",
    "move_on_after",
    "remaining",
    "sleep",
    "spawn",
    "threads",
    "watchdog",
]


# Tracebacks and reprs say threadwise.Task, not threadwise._task.Task.
def _rename_module() -> None:
    for name in __all__:
        obj = globals()[name]
        if isinstance(obj, type) or callable(obj):
            try:
                obj.__module__ = __name__
            except (AttributeError, TypeError):
                pass


_rename_module()
del _rename_module
