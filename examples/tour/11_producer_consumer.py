"""Producer-consumer: a bounded queue, several consumers, close() instead of sentinels.

Run it with ``python examples/tour/11_producer_consumer.py`` (well under a second).

The classic version puts a special "stop" value on the queue for each consumer, and breaks if
the count is wrong or a producer dies before sending it. A ``tw.Queue`` is closed instead:
consumers iterate it and their loop ends once it is closed *and* drained, however many there
are. A ``maxsize`` gives backpressure: a producer that gets ahead waits in ``put()`` (visibly
BLOCKED, and cancellable) instead of filling memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import threadwise as tw

ITEMS = 12
jobs: tw.Queue[int] = tw.Queue(maxsize=3, name="jobs")
consumers_may_start = tw.Event(name="consumers may start")


def produce(count: int) -> int:
    most_queued = 0
    for item in range(count):
        jobs.put(item)  # waits while 3 items are queued
        most_queued = max(most_queued, jobs.qsize())
    jobs.close()  # "no more items": every consumer's loop ends once the queue is drained
    return most_queued


def consume() -> list[int]:
    consumers_may_start.wait()
    handled = []
    for item in jobs:  # no sentinel to look for
        tw.sleep(0.005)  # the work
        handled.append(item)
    return handled


def wait_until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Poll ``condition`` until it holds (a demo helper: real code waits on an event)."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise RuntimeError("the demo did not reach the expected state in time")
        time.sleep(0.001)


def main() -> None:
    with tw.TaskGroup(name="producer-consumer") as group:
        producer = group.spawn(produce, ITEMS)
        consumers = [group.spawn(consume) for _ in range(3)]

        # Consumers are held back, so the producer fills the queue and then has to wait.
        wait_until(lambda: producer.state is tw.State.BLOCKED)
        print(f"backpressure: {jobs.qsize()}/{jobs.maxsize} queued, the producer waits")
        print(f"  producer state={producer.state.name} blocked_on={producer.blocked_on!r}")
        consumers_may_start.set()

    print(f"the queue never held more than {producer.result()} items (maxsize 3)")
    everything: list[int] = []
    for number, consumer in enumerate(consumers, 1):
        handled = consumer.result()
        everything += handled
        print(f"consumer {number} handled {len(handled):>2} items: {handled}")
    print(f"every item handled exactly once: {sorted(everything) == list(range(ITEMS))}")
    print(f"all consumers stopped by close(), no sentinel: {all(c.done() for c in consumers)}")

    try:
        jobs.put(99)
    except tw.QueueClosed as exc:
        print(f"put() after close() raises QueueClosed: {exc}")


if __name__ == "__main__":
    main()
