"""Test helpers for code that uses threads (a pytest plugin, registered automatically).

* ``assert_no_thread_leaks()``: a context manager that fails, with the names and stacks of
  the threads it finds, when the block leaves threads running.
* the ``no_thread_leaks`` fixture does the same around a test; list it in a test's arguments,
  or make it automatic for a whole suite with ``threadwise_leak_check = true`` in the pytest
  ini options (or ``--threadwise-leak-check``). Mark a test ``allow_thread_leak`` to exempt it.
* ``tiny_switch_interval()``: run a block with ``sys.setswitchinterval(1e-6)`` so threads
  switch as often as possible and races show up.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import traceback
from collections.abc import Iterator

from ._threads import idle_threads

__all__ = [
    "ThreadLeakError",
    "assert_no_thread_leaks",
    "baseline_threads",
    "busy_threads",
    "leaked_threads",
    "tiny_switch_interval",
]


class ThreadLeakError(AssertionError):
    """Threads started inside a checked block were still running after it."""


def _describe(threads: list[threading.Thread]) -> str:
    frames = sys._current_frames()
    parts = []
    for thread in threads:
        frame = frames.get(thread.ident or -1)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "  (no stack)\n"
        parts.append(f"{thread.name} (daemon={thread.daemon}, ident={thread.ident}):\n{stack}")
    return "\n".join(parts)


def busy_threads() -> list[threading.Thread]:
    """Live threads, less the ones parked idle in threadwise's thread cache: compare its
    length before and after a block instead of ``threading.active_count()``."""
    idle = idle_threads()  # first: a thread that retires meanwhile was idle, not busy
    return [t for t in threading.enumerate() if t not in idle and t.is_alive()]


def baseline_threads() -> set[threading.Thread]:
    """The threads to compare with after a block: every live thread except idle cached
    workers (one of them may run the block's work, and must not be taken as a baseline)."""
    return set(threading.enumerate()) - idle_threads()


def leaked_threads(before: set[threading.Thread], settle: float = 1.0) -> list[threading.Thread]:
    """Threads alive now that were not in ``before``, after waiting up to ``settle`` seconds
    for threads that are just finishing.

    Threads parked idle in threadwise's thread cache are not leaks: they run nothing and
    retire by themselves within seconds.
    """
    deadline = time.monotonic() + settle
    while True:
        idle = idle_threads()
        leaked = [
            t for t in threading.enumerate() if t not in before and t not in idle and t.is_alive()
        ]
        if not leaked or time.monotonic() >= deadline:
            return leaked
        time.sleep(0.01)


@contextlib.contextmanager
def assert_no_thread_leaks(settle: float = 1.0) -> Iterator[None]:
    """Fail with ``ThreadLeakError`` (names and stacks) if the block leaves threads alive."""
    before = baseline_threads()
    yield
    leaked = leaked_threads(before, settle)
    if leaked:
        raise ThreadLeakError(f"{len(leaked)} thread(s) leaked:\n{_describe(leaked)}")


@contextlib.contextmanager
def tiny_switch_interval(interval: float = 1e-6) -> Iterator[None]:
    """Switch threads as often as the interpreter allows inside the block."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(interval)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


# The pytest plugin (hooks and fixtures) lives beside, importable only where pytest is.
try:
    from ._plugin import (  # noqa: F401 - pytest finds the hooks and fixtures here
        _threadwise_leak_check,
        no_thread_leaks,
        pytest_addoption,
        pytest_configure,
    )
except ImportError:  # pragma: no cover - the helpers above work without pytest
    pass
