"""tw.map: order, completeness, laziness, bounded memory, failure, early exit, timeout, rate."""

# The code under test is often a whole loop, so `pytest.raises` wraps blocks.
# ruff: noqa: PT012

from __future__ import annotations

import concurrent.futures
import gc
import itertools
import random
import re
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import Counted
from hypothesis import given, settings
from hypothesis import strategies as st

import threadwise as tw
from threadwise._pool import ChunkSizer
from threadwise._reorder import window_items
from threadwise._stage import EDGE_QUEUE_ITEMS, MIN_CHUNKS
from threadwise.testing import busy_threads  # idle cached threads retire at any time

WAIT = 5.0  # upper bound for anything the tests wait for; never reached when all is well
MAX_CHUNK = ChunkSizer.MAX_ITEMS  # the largest chunk the engine hands over


def names(argument: str, value: object) -> str:
    """A pattern matching a message that names ``argument`` and then shows ``value``'s repr."""
    return rf"\b{re.escape(argument)}\b.*{re.escape(repr(value))}"


def in_flight_bound(workers: int, ordered: bool) -> int:
    """Items the design lets be in flight at once: a stage inbox and the output queue hold at
    most max(8, 2 * workers) chunks each, and take no chunk once they hold EDGE_QUEUE_ITEMS
    items; every worker holds one chunk; the feeder, the
    consumer and the emitter's unsent remainder hold at most one chunk each; an ordered stage
    also keeps outputs that finished ahead of the one due: up to its item bound, plus the
    chunk each worker stored before it stopped to wait."""
    per_queue = min(max(MIN_CHUNKS, 2 * workers) * MAX_CHUNK, EDGE_QUEUE_ITEMS - 1 + MAX_CHUNK)
    reorder = window_items(workers) + workers * MAX_CHUNK if ordered else 0
    return 2 * per_queue + (workers + 3) * MAX_CHUNK + reorder


def double(x: int) -> int:
    return 2 * x


# -- order and completeness ----------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=3000),
    workers=st.integers(min_value=1, max_value=16),
    ordered=st.booleans(),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_results_match_a_plain_loop(size: int, workers: int, ordered: bool, seed: int) -> None:
    jitter = random.Random(seed)
    slow = set(jitter.sample(range(size), min(size, 5)))

    def fn(x: int) -> int:
        if x in slow:  # a few slow items so that completion order differs from input order
            time.sleep(0.001)
        return 3 * x + 1

    results = list(tw.map(fn, range(size), workers=workers, ordered=ordered))
    expected = [3 * x + 1 for x in range(size)]
    if ordered:
        assert results == expected
    else:
        assert Counter(results) == Counter(expected)


@pytest.mark.parametrize("ordered", [True, False])
def test_every_item_is_processed_exactly_once(ordered: bool) -> None:
    items = [object() for _ in range(5000)]
    calls: Counter[int] = Counter()
    lock = threading.Lock()

    def fn(item: object) -> object:
        with lock:
            calls[id(item)] += 1
        return item

    results = list(tw.map(fn, items, workers=8, ordered=ordered))
    assert len(results) == len(items)
    assert {id(r) for r in results} == {id(i) for i in items}
    assert set(calls.values()) == {1}
    assert len(calls) == len(items)
    if ordered:
        assert all(r is i for r, i in zip(results, items, strict=True))


def test_unordered_yields_in_completion_order() -> None:
    release_first = threading.Event()

    def fn(x: int) -> int:
        if x == 0:  # item 0 finishes only after item 1 has been handed out
            assert release_first.wait(WAIT)
        return x

    it = tw.map(fn, [0, 1], workers=2, ordered=False, chunk_size=1)
    assert next(it) == 1
    release_first.set()
    assert next(it) == 0
    assert next(it, None) is None


def test_ordered_waits_for_the_earlier_item() -> None:
    release_first = threading.Event()
    second_done = threading.Event()

    def fn(x: int) -> int:
        if x == 0:
            assert release_first.wait(WAIT)
        else:
            second_done.set()
        return x

    it = tw.map(fn, [0, 1], workers=2, ordered=True, chunk_size=1)
    getter = concurrent.futures.ThreadPoolExecutor(1)
    try:
        first = getter.submit(next, it)
        assert second_done.wait(WAIT)
        assert not first.done()  # item 1 is finished but must not overtake item 0
        release_first.set()
        assert first.result(WAIT) == 0
        assert list(it) == [1]
    finally:
        release_first.set()
        getter.shutdown()


def test_empty_input() -> None:
    assert list(tw.map(double, [])) == []


def test_map_with_an_executor() -> None:
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert list(tw.map(double, range(500), executor=pool)) == [2 * x for x in range(500)]


@pytest.mark.parametrize("kind", [list, tuple, range, "str", "bytes", "generator"])
def test_every_kind_of_source_gives_every_item_once_in_order(kind: object) -> None:
    # Lists, tuples and ranges are read by slicing, str and bytes by islice, other iterables
    # item by item: each over several chunks of the largest size.
    n = 3 * MAX_CHUNK + 7
    source: Any
    if kind == "str":
        source = "".join(chr(65 + i % 26) for i in range(n))
    elif kind == "bytes":
        source = bytes(i % 256 for i in range(n))
    elif kind == "generator":
        source = (i for i in range(n))
    elif kind is range:
        source = range(n)
    else:
        source = kind(range(n))  # type: ignore[operator]
    expected = list(source) if kind != "generator" else list(range(n))
    assert list(tw.map(lambda x: x, source, workers=3)) == expected


# -- laziness and bounded memory -----------------------------------------------------------------


def test_nothing_starts_before_the_first_next() -> None:
    baseline = len(busy_threads())
    source = Counted(iter(range(100)))
    it = tw.map(double, source, workers=4)
    assert len(busy_threads()) == baseline
    assert source.pulled == 0
    assert next(it) == 0
    del it
    gc.collect()
    assert len(busy_threads()) == baseline


def test_infinite_input_with_a_break_stops_and_joins() -> None:
    baseline = len(busy_threads())
    seen = []
    for result in tw.map(double, itertools.count(), workers=4):
        seen.append(result)
        if len(seen) == 1000:
            break
    # The loop's iterator is gone: the workers are cancelled and joined right away.
    assert len(busy_threads()) == baseline
    assert seen == [2 * x for x in range(1000)]


@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize("workers", [1, 4])
def test_infinite_input_consumed_slowly_stays_bounded(workers: int, ordered: bool) -> None:
    source = Counted(itertools.count())
    bound = in_flight_bound(workers, ordered)
    most_pulled = 0
    results = []
    for result in tw.map(double, source, workers=workers, ordered=ordered):
        results.append(result)
        time.sleep(0.002)  # the consumer is slow: the feeder must wait for it
        most_pulled = max(most_pulled, source.pulled)
        if len(results) == 100:
            break
    if ordered:
        assert results == [2 * x for x in range(100)]
    assert len(set(results)) == 100
    # Unbounded read-ahead would have pulled millions of items in this time.
    assert most_pulled <= bound, (most_pulled, bound)


@pytest.mark.parametrize("ordered", [True, False])
def test_items_in_flight_stay_bounded_over_a_long_run(ordered: bool) -> None:
    workers = 4
    n = 200_000
    source = Counted(iter(range(n)))
    bound = in_flight_bound(workers, ordered)
    peak = 0
    results = []
    for yielded, result in enumerate(
        tw.map(double, source, workers=workers, ordered=ordered), start=1
    ):
        results.append(result)
        peak = max(peak, source.pulled - yielded)
        if yielded % 10_000 == 0:
            time.sleep(0.01)  # let the producer run ahead as far as it can
            peak = max(peak, source.pulled - yielded)
    if ordered:
        assert results == [2 * x for x in range(n)]
    else:
        assert sorted(results) == [2 * x for x in range(n)]
    assert 0 < peak <= bound, (peak, bound)


# -- the first failure cancels the rest ----------------------------------------------------------


class Boom(Exception):
    pass


def explode_at_item_20(x: int) -> int:
    if x == 20:
        raise Boom(f"item {x}")
    return x


def test_error_is_raised_with_fn_traceback_and_a_note() -> None:
    with pytest.raises(Boom) as info:
        list(tw.map(explode_at_item_20, range(100), workers=4))
    frames = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert "explode_at_item_20" in frames
    notes = getattr(info.value, "__notes__", [])
    assert any("stage 'map'" in note and "item 20" in note for note in notes), notes


@pytest.mark.parametrize("ordered", [True, False])
def test_first_error_cancels_the_rest(ordered: bool) -> None:
    workers = 4
    fail_at = 20
    n = 10_000
    lock = threading.Lock()
    raised = False
    started: list[int] = []
    started_late: list[int] = []

    def fn(x: int) -> int:
        nonlocal raised
        with lock:
            started.append(x)
            if raised:
                started_late.append(x)
        time.sleep(0.001)  # foreign work: the cancel reaches the worker only between items
        if x == fail_at:
            with lock:
                raised = True
            raise Boom(x)
        return x

    baseline = len(busy_threads())
    results = []
    with pytest.raises(Boom):
        for result in tw.map(fn, range(n), workers=workers, ordered=ordered, chunk_size=1):
            results.append(result)
    assert len(busy_threads()) == baseline
    # Each other worker may have started at most one item in the moment before the cancel
    # reached it (chunk_size=1).
    assert len(started_late) <= workers - 1, started_late
    # Beyond what fits in the queues ahead of the failure, no item was ever processed.
    in_queues = max(MIN_CHUNKS, 2 * workers) + workers + 2
    assert max(started) <= fail_at + in_queues, sorted(started)
    assert len(started) < fail_at + in_queues
    assert fail_at not in results
    if ordered:
        assert results == list(range(len(results)))


def wait_until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.001)


@pytest.mark.parametrize("ordered", [True, False])
def test_queued_items_never_start_after_the_failure(ordered: bool) -> None:
    """Explicit sequencing: item 0 fails while the inbox is full; the other worker returns
    from item 1 only once the cancel has certainly been delivered (the source thread, blocked
    on the full inbox, has exited). Nothing else may start: items 2.. were only queued."""
    source = Counted(iter(range(100)))
    failed = threading.Event()
    started: list[int] = []
    pulled: list[int] = []

    def source_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.endswith("-source")]

    def source_blocked() -> bool:
        return any(
            info.name.endswith("-source") and "Queue.put" in (info.blocked_on or "")
            for info in tw.threads()
        )

    def fn(x: int) -> int:
        started.append(x)
        if x == 0:
            # workers=2 and chunk_size=1: both workers hold an item, the source waits for room
            # in the full inbox (max(8, 2 * 2) chunks), with one more item in its hands. It is
            # woken only once the inbox is down to half, which the workers, both busy here,
            # never bring it to: what it has read is final.
            wait_until(lambda: 1 in started and source_blocked())
            pulled.append(source.pulled)
            failed.set()
            raise Boom(x)
        if x == 1:
            assert failed.wait(WAIT)
            wait_until(lambda: not source_threads())
        return x

    with pytest.raises(Boom):
        list(tw.map(fn, source, workers=2, ordered=ordered, chunk_size=1))
    # The full inbox and the item in the source's hands, plus the items the workers took
    # before the inbox filled up (none, one or both).
    assert MIN_CHUNKS + 1 <= pulled[0] <= MIN_CHUNKS + 1 + 2
    assert source.pulled == pulled[0]
    assert sorted(started) == [0, 1]


def test_errors_after_the_first_are_not_raised_instead() -> None:
    gate = threading.Barrier(2, timeout=WAIT)

    def fn(x: int) -> int:
        if x == 0:
            raise Boom("first")
        gate.wait()  # never completes: item 0 has failed, the run is cancelled
        return x

    with pytest.raises(Boom, match="first"):
        list(tw.map(fn, range(2), workers=1, chunk_size=1))


# -- leaving the loop early ----------------------------------------------------------------------


def test_leaving_the_loop_by_an_exception_joins_the_workers() -> None:
    baseline = len(busy_threads())
    with pytest.raises(KeyError):
        for result in tw.map(double, itertools.count(), workers=8):
            if result == 100:
                raise KeyError(result)
    assert len(busy_threads()) == baseline


def test_deleting_the_iterator_joins_the_workers() -> None:
    baseline = len(busy_threads())
    it = tw.map(double, itertools.count(), workers=8)
    assert [next(it) for _ in range(10)] == [2 * x for x in range(10)]
    assert len(busy_threads()) > baseline
    del it
    gc.collect()
    assert len(busy_threads()) == baseline


def test_close_stops_the_run() -> None:
    baseline = len(busy_threads())
    it = tw.map(double, itertools.count(), workers=4)
    assert next(it) == 0
    close = getattr(it, "close", None)
    assert close is not None, "map() returns a closable iterator"
    close()
    assert len(busy_threads()) == baseline
    assert next(it, None) is None


def test_closing_the_iterator_cancels_workers_blocked_in_tw_calls() -> None:
    baseline = len(busy_threads())
    entered = threading.Semaphore(0)

    def fn(x: int) -> int:
        if x > 0:
            entered.release()
            tw.sleep(60)  # cancellable: the close must interrupt it
        return x

    it = tw.map(fn, range(10), workers=4, chunk_size=1)
    assert next(it) == 0
    for _ in range(4):
        assert entered.acquire(timeout=WAIT)
    started = time.monotonic()
    del it
    gc.collect()
    assert time.monotonic() - started < WAIT
    assert len(busy_threads()) == baseline


# -- timeout and rate ----------------------------------------------------------------------------


def test_timeout_raises_and_leaks_nothing() -> None:
    baseline = len(busy_threads())

    def stuck(x: int) -> int:
        tw.sleep(60)
        return x

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        list(tw.map(stuck, range(10), workers=2, timeout=0.2))
    assert time.monotonic() - started < WAIT
    assert len(busy_threads()) == baseline


def test_timeout_not_reached() -> None:
    assert list(tw.map(double, range(10), timeout=WAIT)) == [2 * x for x in range(10)]


def test_rate_spaces_the_calls() -> None:
    times: list[float] = []
    lock = threading.Lock()

    def fn(x: int) -> int:
        with lock:
            times.append(time.monotonic())
        return x

    started = time.monotonic()
    assert list(tw.map(fn, range(10), workers=4, rate=20)) == list(range(10))
    elapsed = time.monotonic() - started
    # 10 calls at 20/s shared by all workers: 9 gaps of 50 ms between the first and the last.
    assert elapsed >= 0.44
    assert max(times) - min(times) >= 0.44


# -- retries and skipping ------------------------------------------------------------------------


def test_retries_then_success() -> None:
    attempts: Counter[int] = Counter()
    lock = threading.Lock()

    def flaky(x: int) -> int:
        with lock:
            attempts[x] += 1
            tries = attempts[x]
        if tries < 3:
            raise Boom(x)
        return x

    # map's default backoff is 0.1 s: few items keep this quick.
    assert list(tw.map(flaky, range(4), workers=4, retries=2)) == list(range(4))
    assert attempts == Counter({x: 3 for x in range(4)})


def test_retries_exhausted_raises() -> None:
    calls = Counter[int]()

    def always(x: int) -> int:
        calls[x] += 1
        raise Boom(x)

    with pytest.raises(Boom):
        list(tw.map(always, [7], retries=1))
    assert calls[7] == 2


def test_skip_drops_failing_items() -> None:
    def fn(x: int) -> int:
        if x % 3 == 0:
            raise Boom(x)
        return x

    assert list(tw.map(fn, range(30), on_error="skip")) == [x for x in range(30) if x % 3]


# -- bad input -----------------------------------------------------------------------------------


def consume(it: Iterator[Any]) -> None:
    for _ in it:
        pass


@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (-1, ValueError), ("8", TypeError)])
def test_bad_workers(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match=names("workers", value)):
        tw.map(double, range(3), workers=value)


@pytest.mark.parametrize("fn", [42, None, "double"])
def test_non_callable_fn(fn: Any) -> None:
    with pytest.raises(TypeError, match=names("fn", fn)):
        tw.map(fn, range(3))


def test_bad_on_error() -> None:
    with pytest.raises(ValueError, match=names("on_error", "ignore")):
        tw.map(double, range(3), on_error="ignore")  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (-1, ValueError), ("x", TypeError)])
def test_bad_rate(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match=names("rate", value)):
        tw.map(double, range(3), rate=value)


def test_bad_retries() -> None:
    with pytest.raises(ValueError, match=names("retries", -1)):
        tw.map(double, range(3), retries=-1)


@pytest.mark.parametrize("source", [42, None])
def test_non_iterable_source_names_the_iterable_argument(source: Any) -> None:
    # The parameter is called ``iterable``: the message must not speak of a "source".
    with pytest.raises(TypeError, match=names("iterable", source)):
        tw.map(double, source)


@pytest.mark.parametrize("ordered", ["no", 1, None])
def test_ordered_must_be_a_bool(ordered: Any) -> None:
    with pytest.raises(TypeError, match=names("ordered", ordered)):
        tw.map(double, range(3), ordered=ordered)
    with pytest.raises(TypeError, match=names("ordered", ordered)):
        tw.Pipeline(range(3)).map(double, ordered=ordered)


@pytest.mark.parametrize("workers", [10**9, 10_001])
def test_absurd_worker_counts_are_rejected(workers: int) -> None:
    baseline = len(busy_threads())
    with pytest.raises(ValueError, match=names("workers", workers)):
        tw.map(double, range(3), workers=workers)
    with pytest.raises(ValueError, match=names("workers", workers)):
        tw.Pipeline(range(3)).filter(bool, workers=workers)
    assert len(busy_threads()) == baseline


def test_bad_progress() -> None:
    with pytest.raises(TypeError, match=r"\bprogress\b.*42"):
        tw.map(double, range(3), progress=42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "call",
    [
        lambda: tw.map(double, range(3), timeout=-1),
        lambda: tw.map(double, range(3), chunk_size=0),
    ],
)
def test_other_bad_options_are_rejected_before_any_thread_starts(
    call: Callable[[], object],
) -> None:
    baseline = len(busy_threads())
    with pytest.raises(ValueError, match=r"\b(timeout|chunk_size)\b"):
        call()
    assert len(busy_threads()) == baseline


def test_joining_workers_skips_a_thread_whose_start_was_interrupted() -> None:
    # A Ctrl-C inside Thread.start can leave the OS thread running before start() marked the
    # Thread started; Thread.join() then raises RuntimeError, which replaced the Ctrl-C at the
    # map's shutdown (seen on 3.13 in the random-interrupt campaign). Simulated: an identity
    # set, the started flag not.
    from threadwise._pool import Workers

    workers = Workers("workers", None)
    task: tw.Task[None] = tw.Task(lambda: None, "never-started", parent_scope=workers.scope)
    thread = threading.Thread(target=lambda: None, daemon=True)
    thread._ident = 12345  # type: ignore[attr-defined]
    task._thread = thread
    workers.tasks.append(task)
    assert workers._join_threads([]) == []
