"""Shared fixtures: every test fails if it leaves a thread running."""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Iterator

import pytest

# How long a test's threads get to finish after the test returns (a thread whose task is done
# may still be returning from its last frame).
_SETTLE = 1.0


def _describe(threads: list[threading.Thread]) -> str:
    frames = sys._current_frames()
    parts = []
    for thread in threads:
        frame = frames.get(thread.ident or -1)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "  (no stack)\n"
        parts.append(f"{thread.name} (daemon={thread.daemon}):\n{stack}")
    return "\n".join(parts)


@pytest.fixture(autouse=True)
def no_thread_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if it leaves a thread alive (mark `allow_thread_leak` to opt out)."""
    before = set(threading.enumerate())
    yield
    if request.node.get_closest_marker("allow_thread_leak"):
        return
    deadline = time.monotonic() + _SETTLE
    while True:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    if leaked:
        pytest.fail(f"test leaked {len(leaked)} thread(s):\n{_describe(leaked)}", pytrace=False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "allow_thread_leak: the test deliberately leaves threads behind"
    )
