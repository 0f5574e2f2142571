"""Every exception threadwise raises of its own, in one place.

    BaseException
     └── Cancelled           the scope you run in was cancelled, or its deadline passed
    Exception
     ├── TaskCancelled       (concurrent.futures.CancelledError) result() of a cancelled task
     ├── CancelledTooLate    (concurrent.futures.CancelledError) an Executor future was
     │                       cancelled while running, but its call ran to its end
     ├── QueueClosed         (queue.ShutDown, 3.13+) put() after shutdown; get() once drained
     └── DeadlockError       (RuntimeError) acquiring a Lock would wait forever on a cycle

Timeouts raise the builtin ``TimeoutError``; a group's failures are raised as the builtin
``ExceptionGroup``; bad arguments raise ``TypeError`` / ``ValueError`` naming the argument.

``TaskCancelled`` and ``CancelledTooLate`` live in ``_future_errors``: deriving from
``concurrent.futures.CancelledError`` means importing ``concurrent.futures`` (and ``logging``),
which ``import threadwise`` does not pay for. Both are still importable from here.
"""

from __future__ import annotations

import sys

from ._typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._future_errors import CancelledTooLate as CancelledTooLate
    from ._future_errors import TaskCancelled as TaskCancelled

if sys.version_info >= (3, 13):
    from queue import ShutDown as _ShutDown
else:

    class _ShutDown(Exception):
        """Stands in for ``queue.ShutDown``, which Python 3.13 added."""


class Cancelled(BaseException):
    """Raised inside work whose cancel scope was cancelled or whose deadline passed.

    It derives from ``BaseException`` so that ``except Exception`` does not swallow it: let it
    propagate, the scope that was cancelled catches it on exit.
    """


class QueueClosed(_ShutDown):
    """``put()`` on a shut-down queue, or ``get()`` on one that is shut down and drained.

    On Python 3.13+ it is also a ``queue.ShutDown``, so code written for the standard
    library's ``Queue.shutdown()`` catches it.
    """


class DeadlockError(RuntimeError):
    """Acquiring a threadwise lock would close a cycle of threads waiting on each other.

    Raised in the thread whose acquire would complete the cycle, instead of hanging forever.
    """


def __getattr__(name: str) -> object:
    if name in ("TaskCancelled", "CancelledTooLate"):
        from . import _future_errors

        return getattr(_future_errors, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
