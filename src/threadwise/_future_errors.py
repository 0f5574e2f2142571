"""The exceptions that are also ``concurrent.futures.CancelledError``: ``except CancelledError``
written for the standard library's futures catches them.

A module of their own, imported on first use (``tw.TaskCancelled``, or the first ``result()``
of a cancelled task): deriving from ``CancelledError`` imports ``concurrent.futures``, which
imports ``logging``; together they would add half again to ``import threadwise``. Python's
import lock makes sure each class is created once, whichever thread gets here first.
"""

from __future__ import annotations

import concurrent.futures


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


# Tracebacks say threadwise.TaskCancelled even when it is raised before anyone looked the name
# up in the package (which is what renames the other names loaded on first use).
TaskCancelled.__module__ = CancelledTooLate.__module__ = "threadwise"
