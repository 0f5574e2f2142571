"""CPython's own ``test_threading.py`` run against ``tw.Thread``.

The classes ThreadTests, ThreadJoinOnShutdown and ThreadingExceptionTests come from the running
interpreter's ``test`` package. Those tests name ``threading.Thread`` directly, both in the test
module's code and in the scripts they run in child interpreters, so the swap is made at the
name they look up:

* in this process, for the duration of each test, the test module's global ``threading`` is a
  stand-in module whose ``Thread`` is ``tw.Thread`` and which forwards every other attribute
  (reads and writes) to the real ``threading``; the module-level ``TestThread`` helper is
  rebuilt on ``tw.Thread``. The real ``threading`` module is never changed, so nothing else in
  the process (the interpreter's own ``_DummyThread``, ``Timer``, pytest) is affected.
* in child interpreters (``assert_python_ok("-c", script)``), the script is prefixed with the
  same stand-in, installed as ``sys.modules["threading"]`` before the script imports it.

ExceptHookTests is left out: it expects ``threading.excepthook`` to run as soon as ``run()``
raises, where ``tw.Thread`` deliberately keeps the exception for ``result()`` and passes it to
the hook only if nobody retrieves it (``tests/test_thread.py`` tests that behaviour). The
``test_print_exception*`` tests and ``test_no_refcycle_through_target`` do run and pass: an
unretrieved failure reaches the hook at exit, and a quiet ``SystemExit`` keeps no frames.
Two tests cannot apply; each is skipped with its reason below.
"""

from __future__ import annotations

import sys
import threading
import types
import unittest
from typing import Any

import threadwise as tw
from compat import cpython_test

cpython = cpython_test("test_threading")  # the interpreter's own test suite


class _ThreadingWithTwThread(types.ModuleType):
    """``threading`` with ``Thread`` replaced by ``tw.Thread``; all else is the real module."""

    def __init__(self) -> None:
        super().__init__("threading", threading.__doc__)
        self.__dict__["Thread"] = tw.Thread

    def __getattr__(self, name: str) -> Any:
        return getattr(threading, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(threading, name, value)  # e.g. support.swap_attr(threading, "excepthook", ...)

    def __delattr__(self, name: str) -> None:
        delattr(threading, name)


# The same stand-in for scripts run in a child interpreter, as one line before the script.
_CHILD_PRELUDE = (
    "import sys as _s, types as _y, threading as _t, threadwise as _w\n"
    "class _M(_y.ModuleType):\n"
    "    __getattr__ = lambda self, n, t=_t: getattr(t, n)\n"
    "    __setattr__ = lambda self, n, v, t=_t: setattr(t, n, v)\n"
    "_m = _M('threading'); _m.__dict__['Thread'] = _w.Thread; _s.modules['threading'] = _m\n"
    "del _s, _y, _t, _w, _M, _m\n"
)


def _with_prelude(run: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        args = list(args)
        for i, arg in enumerate(args[:-1]):
            if arg == "-c":
                args[i + 1] = _CHILD_PRELUDE + args[i + 1]
                break
        return run(*args, **kwargs)

    return wrapper


def _rebuilt_on_tw_thread(cls: type) -> type:
    namespace = {k: v for k, v in vars(cls).items() if k not in ("__dict__", "__weakref__")}
    return type(cls.__name__, (tw.Thread,), namespace)


_TEST_THREAD = _rebuilt_on_tw_thread(cpython.TestThread)

_PROXY = _ThreadingWithTwThread()


def _measured_by_coverage() -> bool:
    coverage = sys.modules.get("coverage")
    return coverage is not None and coverage.Coverage.current() is not None


# Child interpreters that coverage measures (CI patches subprocesses) end differently: these
# fail under coverage with the plain threading.Thread too.
_NOT_UNDER_COVERAGE = {"test_locals_at_exit", "test_main_thread_during_shutdown"}


class _SwapThread(unittest.TestCase):
    def setUp(self) -> None:
        if self._testMethodName in _NOT_UNDER_COVERAGE and _measured_by_coverage():
            self.skipTest(
                "coverage measures the child interpreter and changes its shutdown "
                "(this test fails so with threading.Thread as well)"
            )
        patches = {
            "threading": _PROXY,
            "TestThread": _TEST_THREAD,
            "assert_python_ok": _with_prelude(cpython.assert_python_ok),
            "assert_python_failure": _with_prelude(cpython.assert_python_failure),
        }
        for name, value in patches.items():
            self.addCleanup(setattr, cpython, name, getattr(cpython, name))
            setattr(cpython, name, value)
        # test_frame_tstate_tracing installs threading.settrace(noop) and never puts the old
        # hook back: every thread started after it would run without coverage's tracer.
        self.addCleanup(threading.settrace, threading.gettrace())
        self.addCleanup(threading.setprofile, threading.getprofile())
        super().setUp()


def _replaced(reason: str) -> Any:
    @unittest.skip(reason)
    def test(self: unittest.TestCase) -> None:  # pragma: no cover - skipped
        pass

    return test


class ThreadTests(_SwapThread, cpython.ThreadTests):  # type: ignore[misc]
    test_import_from_another_thread = _replaced(
        "checks that its script starts without threading imported, then imports it from a "
        "_thread thread; tw.Thread needs threading imported before the script runs"
    )


class ThreadJoinOnShutdown(_SwapThread, cpython.ThreadJoinOnShutdown):  # type: ignore[misc]
    pass


class ThreadingExceptionTests(_SwapThread, cpython.ThreadingExceptionTests):  # type: ignore[misc]
    if hasattr(cpython.ThreadingExceptionTests, "test_print_exception_gh_102056"):  # 3.12+
        test_print_exception_gh_102056 = _replaced(
            "importing threadwise installs a Python-level SIGINT handler (Ctrl-C protection of the "
            "primitives); the test's interrupt lands while the main thread recurses at the "
            "recursion limit, calling that handler raises RecursionError, the script's own "
            "`except RecursionError` swallows it and the Ctrl-C is lost: the child never ends"
        )


def test_the_swap_reaches_the_tests() -> None:
    """The stand-in really gives the CPython tests tw.Thread, here and in child scripts."""
    assert _PROXY.Thread is tw.Thread
    assert _PROXY.current_thread is threading.current_thread
    assert issubclass(_TEST_THREAD, tw.Thread)
    out = _with_prelude(cpython.assert_python_ok)(
        "-c", "import threading; print(threading.Thread.__module__, threading.Thread.__name__)"
    )[1]
    assert out.split() == [b"threadwise", b"Thread"]
    assert sys.modules["threading"] is threading
