"""tw.map from the ground up: order, laziness, errors, early exit, timeout, rate, progress.

Run it with ``python examples/map_basics.py`` (well under two seconds). Every section prints
what it shows. I/O is simulated with ``tw.sleep``, so nothing touches the network.

``python examples/map_basics.py --dask`` also runs the last section on a local Dask cluster
(needs ``pip install threadwise[dask]``; it takes a few seconds to start the cluster).
"""

from __future__ import annotations

import concurrent.futures
import itertools
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import threadwise as tw


def fetch(n: int) -> str:
    """Pretend to download page ``n``: 50 ms of waiting, then a result."""
    tw.sleep(0.05)  # cancellable: a cancelled map wakes this up at once
    return f"page-{n}"


def square(n: int) -> int:
    """Module-level, so it can be pickled and sent to other processes."""
    return n * n


def ordered_results() -> None:
    # 16 downloads of 50 ms each on 8 threads: about 0.1 s instead of 0.8 s, and the results
    # come back in input order (ordered=True is the default).
    started = time.perf_counter()
    pages = list(tw.map(fetch, range(16), workers=8))
    elapsed = time.perf_counter() - started
    print(f"ordered: {pages[:4]} ... {len(pages)} pages in {elapsed:.2f} s")


def completion_order() -> None:
    # ordered=False yields each result as soon as it is ready: the fast ones first.
    def wait_for(delay: float) -> float:
        tw.sleep(delay)
        return delay

    delays = [0.3, 0.2, 0.1, 0.0]
    print(f"completion order: {list(tw.map(wait_for, delays, workers=4, ordered=False))}")


def lazy_and_bounded() -> None:
    # The input is pulled lazily by one feeder thread and only a bounded amount runs ahead of
    # the consumer, so an endless generator is fine. Nothing starts before the first next().
    pulled = 0

    def pages() -> Iterator[int]:
        nonlocal pulled
        for i in itertools.count():
            pulled += 1
            yield i

    def check(n: int) -> int:
        tw.sleep(0.002)  # a quick request
        return n

    results = tw.map(check, pages(), workers=4)
    print(f"lazy: nothing pulled before iterating: {pulled == 0}")
    for n in results:
        if n == 49:
            break
    # While `results` exists the run is only paused (its workers wait on full queues).
    # Dropping the iterator cancels and joins the workers. A loop written as
    # `for n in tw.map(...)`, with no name for the iterator, does that when the loop is left.
    del results
    print(f"early exit: 50 results taken from an endless source, {pulled} items read")
    print(f"early exit: worker threads left after del: {threading.active_count() - 1}")


def first_error_wins() -> None:
    # The first failure cancels the remaining work and is raised from the loop, with fn's own
    # traceback and a note saying which item failed.
    def parse(text: str) -> int:
        tw.sleep(0.01)
        return int(text)

    try:
        for _ in tw.map(parse, ["1", "2", "three", "4"], workers=2):
            pass
    except ValueError as exc:
        print(f"error: {exc!r} / {exc.__notes__[0]}")


def whole_run_timeout() -> None:
    # timeout= bounds the whole run, not each call. A worker asleep in tw.sleep is woken up.
    started = time.perf_counter()
    try:
        list(tw.map(lambda _: tw.sleep(10), range(4), workers=4, timeout=0.2))
    except TimeoutError as exc:
        print(f"timeout: {exc} (after {time.perf_counter() - started:.2f} s)")


def rate_limited() -> None:
    # rate= is calls per second shared by all the workers: 20 calls at 100/s take ~0.2 s
    # however many workers there are (handy for APIs with a quota).
    started = time.perf_counter()
    done = len(list(tw.map(lambda x: x, range(20), workers=8, rate=100)))
    print(f"rate: {done} calls at 100/s took {time.perf_counter() - started:.2f} s")


def retries_and_skip() -> None:
    # retries= re-runs a failing item (with backoff); on_error="skip" drops the items that
    # still fail instead of stopping the run. Pipeline.run() tells you which ones they were.
    attempts: dict[int, int] = {}

    def flaky(n: int) -> int:
        attempts[n] = attempts.get(n, 0) + 1
        if n == 3 and attempts[n] == 1:
            raise ConnectionError("transient")  # succeeds on the second attempt
        if n == 5:
            raise ValueError("permanent")  # never succeeds: skipped
        return n

    kept = list(tw.map(flaky, range(8), workers=2, retries=1, on_error="skip"))
    print(f"retries/skip: kept {kept}")


def with_progress() -> None:
    # progress=True draws a bar on a terminal; a callable gets ProgressInfo samples instead
    # (a few times a second, and once at the end with finished=True).
    samples: list[tw.ProgressInfo] = []
    for _ in tw.map(fetch, range(8), workers=4, progress=samples.append):
        pass
    last = samples[-1]
    print(f"progress: {last.done}/{last.total} done, finished={last.finished}")


def on_an_executor(executor: concurrent.futures.Executor, label: str) -> None:
    # executor= sends chunks of items to any concurrent.futures.Executor: a process pool, or a
    # Dask cluster through Client.get_executor(). The map's threads only wait for the futures.
    # Chunk sizes follow each chunk's measured round trip: no chunk_size needed.
    total = sum(tw.map(square, range(100), executor=executor, workers=2))
    print(f"executor ({label}): sum of squares below 100 = {total}")


def on_dask() -> None:
    # The Dask backend: a local in-process cluster here; point Client at a scheduler address
    # to use a real one. Work items must be picklable when the workers are other processes.
    import distributed

    dask: Any = distributed  # distributed has no type hints
    with (
        dask.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        dask.Client(cluster) as client,
    ):
        on_an_executor(client.get_executor(), "dask")


def main() -> None:
    ordered_results()
    completion_order()
    lazy_and_bounded()
    first_error_wins()
    whole_run_timeout()
    rate_limited()
    retries_and_skip()
    with_progress()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        on_an_executor(pool, "ThreadPoolExecutor")
    if "--dask" in sys.argv[1:]:
        on_dask()


if __name__ == "__main__":
    main()
