"""Results: three ways to get values back from threads, none needing a shared dict and a lock.

Run it with ``python examples/tour/05_results.py`` (well under a second).

Plain threads return nothing, so the classic recipes write into a dict guarded by a lock, put
results on a queue, or store them in an attribute of a Thread subclass. With threadwise:

1. a task's ``result()`` is the function's return value;
2. a ``tw.Thread`` subclass returns from ``run()`` and the caller calls ``result()``;
3. when you want results *as they finish*, a ``tw.Queue`` that the producers ``close()`` once
   done: the consumer simply iterates it, no sentinel and no "is it empty yet?" polling.
"""

from __future__ import annotations

import threadwise as tw


def square(n: int) -> int:
    tw.sleep(0.03 * (4 - n))  # the bigger n, the sooner it finishes
    return n * n


class SquareThread(tw.Thread):
    def __init__(self, n: int) -> None:
        super().__init__(name=f"square-{n}")
        self.n = n

    def run(self) -> int:
        return square(self.n)


def with_tasks() -> None:
    tasks = [tw.spawn(square, n) for n in range(5)]
    # result() waits for each task; the list is in spawn order, whatever order they finished.
    print(f"1. spawn + result():            {[t.result() for t in tasks]}")


def with_thread_subclass() -> None:
    threads = [SquareThread(n) for n in range(5)]
    for thread in threads:
        thread.start()
    print(f"2. tw.Thread subclass, result(): {[t.result() for t in threads]}")


def with_queue() -> None:
    results: tw.Queue[tuple[int, int]] = tw.Queue(name="results")

    def square_into(n: int) -> None:
        results.put((n, square(n)))

    def close_when_all_done(workers: list[tw.Task[None]]) -> None:
        for worker in workers:
            worker.join()
        results.close()  # ends the consumer's loop below once the queue is drained

    arrived = []
    with tw.TaskGroup(name="squares") as group:
        workers = [group.spawn(square_into, n) for n in range(5)]
        group.spawn(close_when_all_done, workers)
        # Consume while the workers run: each result is handled as soon as it is ready.
        for n, value in results:
            arrived.append(n)
            print(f"   got square({n}) = {value}")
    print(f"3. tw.Queue, in completion order of n: {arrived}")


def main() -> None:
    with_tasks()
    with_thread_subclass()
    with_queue()


if __name__ == "__main__":
    main()
