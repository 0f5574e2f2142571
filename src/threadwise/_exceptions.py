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
"""

from __future__ import annotations

import concurrent.futures
import sys

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


class TaskCancelled(concurrent.futures.CancelledError):
    """Raised by ``Task.result()`` / ``Task.exception()`` for a task that was cancelled.

    Distinct from ``Cancelled``: it says *the task you asked about* was cancelled, not that
    *you* are being cancelled, so catching it never hides a cancellation of the caller.
    """


class CancelledTooLate(concurrent.futures.CancelledError):
    """Raised by ``result()`` of an ``Executor`` future that was cancelled while its call ran,
    when the call never reached a threadwise checkpoint and ran to its end anyway.

    The call's return value is ``value``; if it raised, that exception is ``__cause__``.
    Code that treats ``CancelledError`` as "cancelled" stays correct; code that needs the
    work's outcome finds it here.
    """

    def __init__(self, message: str, *, value: object = None) -> None:
        super().__init__(message)
        self.value = value


class QueueClosed(_ShutDown):
    """``put()`` on a shut-down queue, or ``get()`` on one that is shut down and drained.

    On Python 3.13+ it is also a ``queue.ShutDown``, so code written for the standard
    library's ``Queue.shutdown()`` catches it.
    """


class DeadlockError(RuntimeError):
    """Acquiring a threadwise lock would close a cycle of threads waiting on each other.

    Raised in the thread whose acquire would complete the cycle, instead of hanging forever.
    """
