"""Many threads: start a batch of tasks, bound how many run at once, wait for all of them.

Run it with ``python examples/tour/04_many_threads.py`` (about half a second).

The classic recipe is two loops: start every thread, then join every thread, hoping none was
forgotten. A ``tw.TaskGroup`` is both loops in one ``with`` block: leaving the block waits for
every task started in it, so none can outlive it. ``max_workers`` bounds the number of threads
(extra tasks queue), and ``tw.map`` is the compact form for "this function over these inputs".
"""

from __future__ import annotations

import time

import threadwise as tw


class Concurrency:
    """Counts the tasks running at the same moment and remembers the most seen."""

    def __init__(self) -> None:
        self.lock = tw.Lock(name="concurrency")
        self.running = 0
        self.peak = 0

    def enter(self) -> None:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)

    def leave(self) -> None:
        with self.lock:
            self.running -= 1


concurrency = Concurrency()


def fetch(file_id: int) -> str:
    concurrency.enter()
    tw.sleep(0.05)  # stands in for waiting on the network
    concurrency.leave()
    return f"file-{file_id}"


def busy_threads() -> int:
    """Threads doing something. Threads a finished task leaves idle in threadwise's thread
    cache (reused by the next tasks, retired after 2 s) do not count."""
    return sum(not (info.blocked_on or "").startswith("idle in") for info in tw.threads())


def main() -> None:
    threads_before = busy_threads()

    # One thread per task; the with block is the "join them all" loop.
    start = time.perf_counter()
    with tw.TaskGroup(name="five") as group:
        tasks = [group.spawn(fetch, i) for i in range(5)]
    elapsed = time.perf_counter() - start
    print(f"5 tasks, one thread each: {[t.result() for t in tasks]}")
    print(f"  took {elapsed:.2f} s for 5 x 0.05 s of waiting: they ran side by side")

    # At most 4 threads; the other tasks wait in the group's queue for a free one.
    concurrency.peak = 0
    with tw.TaskGroup(name="bounded", max_workers=4) as group:
        tasks = [group.spawn(fetch, i) for i in range(20)]
    peak = concurrency.peak
    print(f"20 tasks with max_workers=4: {sum(t.done() for t in tasks)} done")
    print(f"  at most {peak} ran at once, never more than 4: {peak <= 4}")

    # The compact pattern: a function over an iterable, results in input order.
    results = list(tw.map(fetch, range(12), workers=6))
    in_order = results == [f"file-{i}" for i in range(12)]
    print(f"tw.map, 12 inputs on 6 workers: {results[:3]} ... in input order: {in_order}")

    # Every thread started above has finished its work: nothing leaked.
    threads_after = busy_threads()
    leaked = threads_after - threads_before
    print(f"threads before: {threads_before}, after: {threads_after}, leaked: {leaked}")


if __name__ == "__main__":
    main()
