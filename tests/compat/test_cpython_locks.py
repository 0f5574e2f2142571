"""CPython's ``Lib/test/lock_tests.py`` with threadwise's locks, conditions, semaphores,
events and barriers swapped in (the classes ``Lib/test/test_threading.py`` builds from it)."""

from __future__ import annotations

import unittest

import threadwise as tw
from compat import cpython_test

lock_tests = cpython_test("lock_tests")


class LockTests(lock_tests.LockTests):
    locktype = staticmethod(tw.Lock)


class RLockTests(lock_tests.RLockTests):
    locktype = staticmethod(tw.RLock)


class EventTests(lock_tests.EventTests):
    eventtype = staticmethod(tw.Event)


class ConditionAsRLockTests(lock_tests.RLockTests):
    # Condition uses an RLock by default and exports its API, as threading.Condition does.
    locktype = staticmethod(tw.Condition)

    def test_recursion_count(self) -> None:
        raise unittest.SkipTest(
            "Condition does not expose _recursion_count() (nor does threading's)"
        )


class ConditionTests(lock_tests.ConditionTests):
    condtype = staticmethod(tw.Condition)


class SemaphoreTests(lock_tests.SemaphoreTests):
    semtype = staticmethod(tw.Semaphore)


class BoundedSemaphoreTests(lock_tests.BoundedSemaphoreTests):
    semtype = staticmethod(tw.BoundedSemaphore)


class BarrierTests(lock_tests.BarrierTests):
    barriertype = staticmethod(tw.Barrier)
