"""CPython's ``Lib/test/test_queue.py`` with threadwise's queues swapped in (including the
``shutdown()`` tests on Python 3.13+, and the subclass that fails through the hooks)."""

from __future__ import annotations

import queue
import types
import unittest

import threadwise as tw
from compat import cpython_test

test_queue = cpython_test("test_queue")

# What the suite reads as ``self.queue``: the queue module, with threadwise's classes in it.
threadwise_queue = types.SimpleNamespace(
    Queue=tw.Queue,
    LifoQueue=tw.LifoQueue,
    PriorityQueue=tw.PriorityQueue,
    Empty=queue.Empty,
    Full=queue.Full,
    ShutDown=getattr(queue, "ShutDown", tw.QueueClosed),
)


class QueueTest(test_queue.QueueTest, unittest.TestCase):
    queue = threadwise_queue


class LifoQueueTest(test_queue.LifoQueueTest, unittest.TestCase):
    queue = threadwise_queue


class PriorityQueueTest(test_queue.PriorityQueueTest, unittest.TestCase):
    queue = threadwise_queue


class FailingQueueTest(test_queue.FailingQueueTest, unittest.TestCase):
    queue = threadwise_queue
