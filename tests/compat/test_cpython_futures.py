"""CPython's own ``concurrent.futures`` tests for the thread pool, run against ``tw.Executor``.

The test classes pick their executor through a mixin attribute (``executor_type``); we
subclass the thread-pool ones and point it at ``tw.Executor``. Tests that name
``futures.ThreadPoolExecutor`` directly get it replaced by ``tw.Executor`` in their module
while they run. Tests that start a child Python importing the stdlib pool by name are
re-stated below against threadwise (same script, same checks). Not applicable:

* ``test_deadlock.py``: every class there is for the process pool (pickling, crashed workers).
* ``test_thread_names_default``: checks the stdlib's default thread name
  ``ThreadPoolExecutor-<n>_<k>``; ours is ``Executor-<n>_<k>`` (the executor's ``name``).
* ``test_hang_global_shutdown_lock``: about the stdlib pool's private global lock at fork.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import logging
import sys
import types
import unittest
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest

import threadwise as tw
from threadwise import _threads
from threadwise._executor import Future as TwFuture

try:
    importlib.import_module("test.test_concurrent_futures.util")
except ImportError:
    pytest.skip(
        f"Python {sys.version.split()[0]} here ships no test.test_concurrent_futures "
        "(CPython's test package is incomplete); these tests run on 3.13",
        allow_module_level=True,
    )

from test.support.script_helper import assert_python_ok


def _module(name: str) -> types.ModuleType:
    return importlib.import_module(f"test.test_concurrent_futures.{name}")


# concurrent.futures as the tests see it, with our executor as the thread pool.
_futures_shim = types.ModuleType("concurrent.futures")
_futures_shim.__dict__.update(
    {name: getattr(concurrent.futures, name) for name in concurrent.futures.__all__}
)
_futures_shim.ThreadPoolExecutor = tw.Executor  # type: ignore[attr-defined]


@pytest.fixture(autouse=True, scope="module")
def _short_idle_timeout() -> Iterator[None]:
    # CPython's tests join the pool's threads after shutdown and wait 1 s for the thread count
    # to drop; let our idle cached threads retire at once instead of after 2 s.
    old = _threads.set_idle_timeout(0.02)
    try:
        yield
    finally:
        _threads.set_idle_timeout(old)


class _UsesThreadwise(unittest.TestCase):
    executor_type: Any = tw.Executor
    _modules: tuple[str, ...] = ()

    def setUp(self) -> None:
        for name in self._modules:
            patcher = mock.patch.object(_module(name), "futures", _futures_shim)
            patcher.start()
            self.addCleanup(patcher.stop)
        super().setUp()


_thread_pool = _module("test_thread_pool")
_wait = _module("test_wait")
_as_completed = _module("test_as_completed")
_init = _module("test_init")
_future = _module("test_future")
_shutdown = _module("test_shutdown")

_SKIP_NOT_OURS = "the stdlib pool's own detail (see the module docstring)"


class TestThreadPoolExecutor(_UsesThreadwise, _thread_pool.ThreadPoolExecutorTest):  # type: ignore[misc]
    _modules = ("test_thread_pool",)

    @unittest.skip(_SKIP_NOT_OURS)
    def test_hang_global_shutdown_lock(self) -> None: ...


class TestThreadPoolWait(_UsesThreadwise, _wait.ThreadPoolWaitTests):  # type: ignore[misc]
    _modules = ("test_wait",)


class TestThreadPoolAsCompleted(_UsesThreadwise, _as_completed.ThreadPoolAsCompletedTest):  # type: ignore[misc]
    _modules = ("test_as_completed",)


class TestThreadPoolInitializer(_UsesThreadwise, _init.ThreadPoolInitializerTest):  # type: ignore[misc]
    pass


class TestThreadPoolFailingInitializer(  # type: ignore[misc]
    _UsesThreadwise, _init.ThreadPoolFailingInitializerTest
):
    pass


def _tw_create_future(state: str = "PENDING", exception: Any = None, result: Any = None) -> Any:
    future: TwFuture[Any] = TwFuture()
    future._state = state
    future._exception = exception
    future._result = result
    return future


class TestFuture(_future.FutureTests):  # type: ignore[misc]
    """The Future tests, on our Future subclass (also where they build their futures)."""

    def setUp(self) -> None:
        module = _module("test_future")
        for name, value in (("Future", TwFuture), ("create_future", _tw_create_future)):
            patcher = mock.patch.object(module, name, value)
            patcher.start()
            self.addCleanup(patcher.stop)
        # Two tests read a failing callback's log line from stderr, where logging writes it
        # when no handler is configured; pytest's log capture would take it first.
        quiet = mock.patch.object(logging.getLogger("concurrent.futures"), "propagate", False)
        quiet.start()
        self.addCleanup(quiet.stop)
        super().setUp()


_CHILD_PREAMBLE = "from threadwise import Executor\n"


class TestThreadPoolShutdown(_UsesThreadwise, _shutdown.ThreadPoolShutdownTest):  # type: ignore[misc]
    _modules = ("test_shutdown",)

    @unittest.skip(_SKIP_NOT_OURS)
    def test_thread_names_default(self) -> None: ...

    # The child-process tests import the pool by its stdlib name; these import ours.
    def test_interpreter_shutdown(self) -> None:
        _rc, out, err = assert_python_ok(
            "-c",
            _CHILD_PREAMBLE
            + "from test.test_concurrent_futures.test_shutdown import sleep_and_print\n"
            "t = Executor(5)\n"
            "t.submit(sleep_and_print, 1.0, 'apple')\n",
        )
        assert not err
        assert out.strip() == b"apple"

    def test_submit_after_interpreter_shutdown(self) -> None:
        _rc, out, err = assert_python_ok(
            "-c",
            "import atexit\n"
            "@atexit.register\n"
            "def run_last():\n"
            "    try:\n"
            "        t.submit(id, None)\n"
            "    except RuntimeError:\n"
            "        print('runtime-error')\n"
            "        raise\n" + _CHILD_PREAMBLE + "t = Executor(5)\n",
        )
        assert "RuntimeError: cannot schedule new futures" in err.decode()
        assert out.strip() == b"runtime-error"

    def test_hang_gh83386(self) -> None:
        _rc, out, err = assert_python_ok(
            "-c",
            _CHILD_PREAMBLE
            + "from test.test_concurrent_futures.test_shutdown import sleep_and_print\n"
            "t = Executor(max_workers=3)\n"
            "t.submit(sleep_and_print, 1.0, 'apple')\n"
            "t.shutdown(wait=False)\n",
        )
        assert not err
        assert out.strip() == b"apple"

    def test_cancel_futures_wait_false(self) -> None:
        _rc, out, err = assert_python_ok(
            "-c",
            _CHILD_PREAMBLE
            + "from test.test_concurrent_futures.test_shutdown import sleep_and_print\n"
            "t = Executor()\n"
            "t.submit(sleep_and_print, .1, 'apple')\n"
            "t.shutdown(wait=False, cancel_futures=True)\n",
        )
        assert not err
        assert out.strip() in (b"apple", b"")
