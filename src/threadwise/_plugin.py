"""The pytest side of ``threadwise.testing`` (see there); loaded through it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .testing import _describe, baseline_threads, leaked_threads


def pytest_addoption(parser: Any) -> None:
    parser.addini(
        "threadwise_leak_check",
        "fail every test that leaves a thread running (threadwise)",
        type="bool",
        default=False,
    )
    parser.addoption(
        "--threadwise-leak-check",
        action="store_true",
        default=False,
        help="fail every test that leaves a thread running (threadwise)",
    )


def pytest_configure(config: Any) -> None:
    config.addinivalue_line(
        "markers", "allow_thread_leak: the test may leave threads running (threadwise)"
    )


def _check(request: Any) -> Iterator[None]:
    if request.node.get_closest_marker("allow_thread_leak"):
        yield
        return
    before = baseline_threads()
    yield
    leaked = leaked_threads(before)
    if leaked:
        pytest.fail(f"test leaked {len(leaked)} thread(s):\n{_describe(leaked)}", pytrace=False)


@pytest.fixture
def no_thread_leaks(request: Any) -> Iterator[None]:
    """Fail the test if it leaves a thread running."""
    yield from _check(request)


@pytest.fixture(autouse=True)
def _threadwise_leak_check(request: Any) -> Iterator[None]:
    config = request.config
    enabled = config.getoption("--threadwise-leak-check") or config.getini("threadwise_leak_check")
    if enabled and "no_thread_leaks" not in request.fixturenames:
        yield from _check(request)
    else:
        yield
