"""threadwise: threads that are safe, observable and fast.

Tasks return results and re-raise their errors, groups never leak threads, cancellation and
deadlines reach every blocking call threadwise provides.
"""

from __future__ import annotations

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
from ._exceptions import Cancelled, DeadlockError, QueueClosed
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
from ._typing import TYPE_CHECKING
from ._version import __version__

if TYPE_CHECKING:  # pragma: no cover - for type checkers: what __getattr__ below provides
    from . import aio as aio
    from ._executor import Executor as Executor
    from ._future_errors import CancelledTooLate as CancelledTooLate
    from ._future_errors import TaskCancelled as TaskCancelled
    from ._group import TaskGroup as TaskGroup
    from ._inspect import ThreadInfo as ThreadInfo
    from ._inspect import Watchdog as Watchdog
    from ._inspect import dump as dump
    from ._inspect import dump_on_signal as dump_on_signal
    from ._inspect import threads as threads
    from ._inspect import watchdog as watchdog
    from ._local import ThreadLocal as ThreadLocal
    from ._map import map as map
    from ._pipeline import Pipeline as Pipeline
    from ._progress import ProgressInfo as ProgressInfo
    from ._report import PipelineReport as PipelineReport
    from ._report import StageReport as StageReport
    from ._service import Service as Service
    from ._task import State as State
    from ._task import Task as Task
    from ._task import Thread as Thread
    from ._task import spawn as spawn
del TYPE_CHECKING

# Imported on first use, so that `import threadwise` stays quick: the executor and the two
# CancelledError subclasses need concurrent.futures (and, through it, logging); map and
# Pipeline a dozen modules of their own; TaskGroup, the thread inspector and Service a module
# each; aio, asyncio, which alone takes longer to import than threadwise. Task, spawn and
# ThreadLocal too: with the thread cache and enum (for State) they are a third of the rest of
# the import, which a program that only shows its --help, or only takes locks and waits on
# queues, never uses. name -> its private module.
_LAZY = {
    "CancelledTooLate": "_future_errors",
    "Executor": "_executor",
    "Pipeline": "_pipeline",
    "PipelineReport": "_report",
    "ProgressInfo": "_progress",
    "Service": "_service",
    "StageReport": "_report",
    "State": "_task",
    "Task": "_task",
    "TaskCancelled": "_future_errors",
    "TaskGroup": "_group",
    "Thread": "_task",
    "ThreadInfo": "_inspect",
    "ThreadLocal": "_local",
    "Watchdog": "_inspect",
    "dump": "_inspect",
    "dump_on_signal": "_inspect",
    "map": "_map",
    "spawn": "_task",
    "threads": "_inspect",
    "watchdog": "_inspect",
}


def __getattr__(name: str) -> object:
    module_name = _LAZY.get(name)
    if module_name is None:
        if name == "aio":
            import importlib

            return importlib.import_module(".aio", __name__)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    import sys

    importlib.import_module(f"{__name__}.{module_name}")
    # The module may have imported other lazy ones (map imports Pipeline): rename and cache
    # every lazy name whose module is loaded now, so each is looked up here once.
    for lazy_name, lazy_module in _LAZY.items():
        module = sys.modules.get(f"{__name__}.{lazy_module}")
        if module is not None:
            value = getattr(module, lazy_name)
            _rename(value)
            globals()[lazy_name] = value
    return globals()[name]


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, "aio"})


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
def _rename(obj: object) -> None:
    if isinstance(obj, type) or callable(obj):
        try:
            obj.__module__ = __name__
        except (AttributeError, TypeError):
            pass


def _rename_loaded() -> None:
    for name in __all__:
        if name not in _LAZY:
            _rename(globals()[name])


_rename_loaded()
del _rename_loaded
