"""Shared fixture for the CPython suites: forget the dummy Thread objects of ended raw threads.

CPython's tests start raw ``_thread`` threads; a raw thread that calls
``threading.current_thread()`` (logging does, and so does threadwise when it blocks) gets a
``threading._DummyThread`` that Python 3.11 and 3.12 keep in ``threading.enumerate()`` forever,
alive, after the thread ended (3.13 removes them). The leak check would take them for leaked
threads. Threads still running are left alone, so real leaks are still reported.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _forget_ended_dummy_threads() -> Iterator[None]:
    yield
    if sys.version_info >= (3, 13):
        return
    running = sys._current_frames()
    for thread in threading.enumerate():
        if isinstance(thread, threading._DummyThread) and thread.ident not in running:
            with threading._active_limbo_lock:  # type: ignore[attr-defined]
                threading._active.pop(thread.ident, None)  # type: ignore[attr-defined]
