"""The cluster helpers and remote chunk sizing, without a cluster: threadwise.dask's checks and
install hint, the RemoteChunkSizer's rule, and a chunk that an executor gives up on."""

from __future__ import annotations

import concurrent.futures
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import threadwise as tw
from threadwise import dask as tw_dask
from threadwise._pool import Loan, RemoteChunkSizer


class GaveUp(Exception):
    pass


class GivesUpOnce(concurrent.futures.Executor):
    """Runs chunks in the caller's thread, but fails the first chunk as a whole (as Dask does
    with KilledWorker once the workers running it died)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.failed = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self.lock:
            fail, self.failed = not self.failed, True
        if fail:
            future.set_exception(GaveUp("the workers died"))
        else:
            future.set_result(fn(*args, **kwargs))
        return future


def double(x: int) -> int:
    return 2 * x


def test_a_chunk_given_up_on_is_retried_item_by_item() -> None:
    pipeline = tw.Pipeline(range(10)).map(
        double, executor=GivesUpOnce(), retries=1, backoff=0.001, chunk_size=4
    )
    assert list(pipeline) == [2 * x for x in range(10)]
    report = pipeline.report
    assert report is not None
    assert report.accounted
    stage = report.stages[0]
    assert (stage.completed, stage.failed, stage.retries) == (10, 0, 4)


def test_a_chunk_given_up_on_fails_each_of_its_items_with_that_cause() -> None:
    pipeline = tw.Pipeline(range(10)).map(
        double, executor=GivesUpOnce(), on_error="skip", chunk_size=4, workers=1
    )
    assert list(pipeline) == [2 * x for x in range(4, 10)]
    report = pipeline.report
    assert report is not None
    assert report.accounted
    stage = report.stages[0]
    assert (stage.completed, stage.failed) == (6, 4)
    assert [item for item, _ in stage.errors] == [0, 1, 2, 3]
    assert all(isinstance(error, GaveUp) for _, error in stage.errors)


def test_a_chunk_given_up_on_raises_its_cause() -> None:
    pipeline = tw.Pipeline(range(10)).map(
        double, executor=GivesUpOnce(), chunk_size=4, name="double"
    )
    with pytest.raises(GaveUp) as info:
        pipeline.run()
    note = (
        "threadwise: the executor failed a whole chunk of 4 item(s) of stage 'double', from item 0"
    )
    assert note in info.value.__notes__
    report = pipeline.report
    assert report is not None
    assert report.accounted
    assert report.stages[0].failed == 1


# -- RemoteChunkSizer ----------------------------------------------------------------------------


def test_remote_sizer_sends_one_item_first_and_waits_once_for_its_figures() -> None:
    sizer = RemoteChunkSizer()
    assert sizer.size() == 1
    started = time.monotonic()
    assert sizer.size() == 1  # waited for figures that never came
    waited = time.monotonic() - started
    assert waited >= RemoteChunkSizer.FIRST_WAIT * 0.9
    started = time.monotonic()
    assert sizer.size() == 1
    assert time.monotonic() - started < RemoteChunkSizer.FIRST_WAIT / 2  # only once


def test_remote_sizer_second_chunk_follows_the_first_figures() -> None:
    sizer = RemoteChunkSizer()
    assert sizer.size() == 1
    done = threading.Timer(0.02, sizer.record_remote, (1, 0.010, 0.0))
    done.start()
    try:
        assert sizer.size() == RemoteChunkSizer.MAX_ITEMS  # trivial work: the largest chunks
    finally:
        done.join()


def test_remote_sizer_keeps_the_round_trip_a_tenth_of_each_chunk() -> None:
    sizer = RemoteChunkSizer()
    sizer.record_remote(1, elapsed=0.011, work=0.001)  # 10 ms round trip, 1 ms per item
    assert sizer.overhead == pytest.approx(0.010)
    assert sizer.size() in (89, 90)  # 90 ms of work per 10 ms round trip (float rounding)
    sizer = RemoteChunkSizer()
    sizer.record_remote(2, elapsed=2.01, work=2.0)  # slow items: one at a time
    assert sizer.size() == 1


def test_remote_sizer_round_trip_ignores_time_queued() -> None:
    sizer = RemoteChunkSizer()
    sizer.record_remote(10, elapsed=0.020, work=0.010)
    sizer.record_remote(10, elapsed=1.010, work=0.010)  # queued behind other chunks
    assert sizer.overhead == pytest.approx(0.010)
    sizer.record_remote(10, elapsed=0.015, work=0.010)  # a lower sample is taken at once
    assert sizer.overhead == pytest.approx(0.005)
    sizer.record_remote(0, elapsed=1.0, work=1.0)  # nothing measured
    assert sizer.overhead == pytest.approx(0.005)


def test_remote_sizer_chunks_do_not_grow_with_their_own_queueing() -> None:
    # 8 chunks in flight on 2 worker processes: each waits behind about three others, so
    # its time beyond its work is mostly queueing, which grows with the chunks. The chunks
    # must keep the size the round trip alone gives (they grew to 80-120 items, one worker
    # running the last alone for half a second).
    sizer = RemoteChunkSizer(parallel=2)
    sizer.record_remote(1, elapsed=0.019, work=0.007)  # 12 ms round trip, 7 ms items
    first = sizer.size()
    assert first == 15
    for _ in range(40):
        size = sizer.size()
        sizer.record_remote(size, elapsed=4 * size * 0.007 + 0.012, work=size * 0.007)
    assert sizer.overhead == pytest.approx(0.012)
    assert sizer.size() == first


def test_remote_sizer_fixed_size_and_local_timing() -> None:
    sizer = RemoteChunkSizer(7)
    assert sizer.size() == 7
    sizer = RemoteChunkSizer()
    sizer.record(100, 1.0)  # the stage's own timing: not used for remote chunks
    assert (sizer.cost, sizer.overhead) == (None, None)


# -- threadwise.dask, no cluster needed ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("tcp://127.0.0.1:8786", True),
        ("tls://scheduler:8786", True),
        ("inproc://10.0.0.1/1/2", True),
        ("127.0.0.1:8786", False),
        ("tcp://", False),
        ("pool", False),
        (8786, False),
    ],
)
def test_is_address(value: object, expected: bool) -> None:
    assert tw_dask.is_address(value) is expected


def test_a_string_executor_that_is_no_address_is_refused() -> None:
    with pytest.raises(ValueError, match=r"executor must be .*'tcp://127\.0\.0\.1:8786'.*'pool'"):
        tw.map(double, range(3), executor="pool")
    with pytest.raises(TypeError, match=r"executor must be .*got 3"):
        tw.Pipeline(range(3)).map(double, executor=3)  # type: ignore[arg-type]


def test_connect_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match=r"address must be a Dask scheduler address.*'here'"):
        tw_dask.connect("here").__enter__()
    with pytest.raises(TypeError, match=r"address must be .*None"):
        tw_dask.connect(None).__enter__()  # type: ignore[arg-type]
    for timeout in (0, -1, True, "5"):
        with pytest.raises(ValueError, match=r"timeout must be a positive number"):
            tw_dask.connect("tcp://127.0.0.1:1", timeout=timeout).__enter__()  # type: ignore[arg-type]


@pytest.fixture
def no_distributed(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if the dask extra were not installed."""
    import importlib.util

    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "distributed" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setitem(sys.modules, "distributed", None)  # import raises ModuleNotFoundError
    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


@pytest.mark.usefixtures("no_distributed")
def test_the_install_hint_when_distributed_is_missing() -> None:
    hint = r"needs Dask's distributed package: pip install 'threadwise\[dask\]'"
    with pytest.raises(ModuleNotFoundError, match=r"executor='tcp://127\.0\.0\.1:1' " + hint):
        tw.map(double, range(3), executor="tcp://127.0.0.1:1")
    with pytest.raises(ModuleNotFoundError, match=hint):
        tw.Pipeline(range(3)).map(double, executor="tcp://127.0.0.1:1")
    with pytest.raises(ModuleNotFoundError, match=r"connect\('tcp://127\.0\.0\.1:1'\) " + hint):
        tw_dask.connect("tcp://127.0.0.1:1").__enter__()


def test_cluster_executor_names_its_address() -> None:
    pytest.importorskip("distributed")
    executor = tw_dask.ClusterExecutor("tcp://127.0.0.1:1")
    assert repr(executor) == "ClusterExecutor('tcp://127.0.0.1:1')"
    tw_dask.close_all()  # nothing connected: nothing to close


def test_a_container_read_slowly_keeps_the_receivers_chunk_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A list or range never blocks: a read of it that the machine slowed down (the first read,
    preempted) must not make the feeder shrink the next chunks as for a slow source (it held a
    remote stage's 100,000 trivial items to chunks of a few hundred, a round trip each)."""
    import itertools

    from threadwise import _feed
    from threadwise._feed import Feeder
    from threadwise._pool import ChunkSizer
    from threadwise._report import PipelineReport

    clock = itertools.count(0.0, 0.01)  # every read seems to take 10 ms
    monkeypatch.setattr(_feed, "_perf", lambda: next(clock))
    sizes: list[int] = []
    feeder = Feeder(
        range(20_000),
        PipelineReport("p", []),
        lambda seq, chunk: sizes.append(len(chunk)),
        receiver=ChunkSizer(5_000),
        receiver_full=lambda: False,
    )
    feeder.run()
    assert sizes == [5_000] * 4


# -- the first round of remote chunks, and the last ones -----------------------------------------


class Recording(concurrent.futures.ThreadPoolExecutor):
    """A thread pool that notes each chunk submitted to it: (items, budget)."""

    def __init__(self, workers: int = 2) -> None:
        super().__init__(workers)
        self.chunks: list[tuple[int, float]] = []
        self.completing: set[str] = set()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        chunk = args[-1]
        self.chunks.append((len(chunk.items), chunk.budget))
        return super().submit(fn, *args, **kwargs)


def slowly(x: int) -> int:
    time.sleep(0.01)
    return x


def numbers(n: int) -> Iterator[int]:
    yield from range(n)


@pytest.mark.parametrize("source", ["range", "list", "generator"])
@pytest.mark.parametrize("workers", [1, 4])
def test_trivial_items_go_in_the_first_round_trip(source: str, workers: int) -> None:
    """One item to learn per slot of the executor but one (a pool of 2 and 4 workers: 2
    slots), and the rest in one large chunk in the same round: not a round trip of one item,
    then another of the rest."""
    items = {"range": range(1000), "list": list(range(1000)), "generator": numbers(1000)}[source]
    with Recording(2) as pool:
        pipeline = tw.Pipeline(items).map(double, executor=pool, workers=workers)
        assert list(pipeline) == [2 * x for x in range(1000)]
    if source == "generator":
        # The feeder reads a generator at its own pace (smaller chunks when reading seems
        # slow), and the caller may rescue what it holds: one lent chunk still, no item sent
        # twice.
        assert sum(size for size, _ in pool.chunks) == 1000
        assert [budget for _, budget in pool.chunks].count(Loan.BUDGET) == 1
    elif workers == 1:
        assert pool.chunks == [(1000, Loan.BUDGET)]
    else:
        assert pool.chunks == [(1, 0.0), (999, Loan.BUDGET)]
    report = pipeline.report
    assert report is not None
    assert report.accounted
    assert (report.source_read, report.stages[0].items_in, report.stages[0].completed) == (
        1000,
        1000,
        1000,
    )


@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize("source", ["range", "generator"])
def test_slow_items_of_the_large_first_chunk_come_back_and_go_again(
    ordered: bool, source: str
) -> None:
    """The large first chunk stops after its budget; the items it did not reach are sent again,
    in chunks of their measured size, before any item after them; each is counted once."""
    n = 60
    items = range(n) if source == "range" else numbers(n)
    with Recording(2) as pool:
        pipeline = tw.Pipeline(items).map(slowly, executor=pool, ordered=ordered, workers=4)
        out = list(pipeline)
    if ordered:
        assert out == list(range(n))
    else:
        assert sorted(out) == list(range(n))
    sizes = [size for size, _ in pool.chunks]
    assert sizes[:2] == [1, n - 1]
    # The budget (20 ms) stopped the large chunk after a few 10 ms items: the others went again.
    assert sum(sizes[2:]) > n // 2
    assert sum(sizes) > n
    assert all(budget == 0.0 for _, budget in pool.chunks[2:])
    report = pipeline.report
    assert report is not None
    assert report.accounted
    stage = report.stages[0]
    assert (report.source_read, stage.items_in, stage.completed, stage.items_out) == (n, n, n, n)


def test_a_large_first_chunk_that_fails_as_a_whole_gives_nothing_back() -> None:
    """One worker: the first chunk is the large one; the executor fails it as a whole, its
    items fail with that cause (none goes again), and the feeder goes on to the end."""
    pipeline = tw.Pipeline(range(30)).map(
        double, executor=GivesUpOnce(), on_error="skip", workers=1
    )
    out = list(pipeline)
    report = pipeline.report
    assert report is not None
    assert report.accounted
    stage = report.stages[0]
    assert len(out) == stage.completed == 30 - stage.failed
    assert stage.failed >= 1
    assert all(isinstance(error, GaveUp) for _, error in stage.errors)
    assert report.source_read == stage.items_in == 30


def test_apply_remote_stops_after_its_budget_but_runs_one_item_at_least(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a clock that each item moves on by 10 ms (the machine's speed plays no part)."""
    from threadwise import _stage
    from threadwise._stage import _apply_remote, _Chunk

    clock = [0.0]
    monkeypatch.setattr(_stage, "_perf", lambda: clock[0])

    def ten_ms(x: int) -> int:
        clock[0] += 0.01
        return x

    # A map chunk on a budget (the first large chunk) whose items succeed comes back as its
    # values alone too: fewer of them than its items when the budget ran out.
    done = _apply_remote("map", ten_ms, _Chunk([1, 2, 3, 4, 5, 6], budget=0.015))
    assert done.plain
    assert done.items == [1, 2]
    done = _apply_remote("map", ten_ms, _Chunk([1, 2], budget=1e-9))
    assert done.plain
    assert done.items == [1]
    done = _apply_remote("map", ten_ms, _Chunk([1, 2, 3]))  # no budget: every item
    assert done.plain
    assert done.items == [1, 2, 3]


def test_apply_remote_on_a_budget_turns_to_pairs_at_a_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failure on a budget: pairs from there on, the failed item not run again, and the
    budget still stops the rest (on a clock that each item moves on by 10 ms)."""
    from threadwise import _stage
    from threadwise._stage import _apply_remote, _Chunk

    clock = [0.0]
    monkeypatch.setattr(_stage, "_perf", lambda: clock[0])
    calls: list[int] = []

    def fails_on_2(x: int) -> int:
        calls.append(x)
        clock[0] += 0.01
        if x == 2:
            raise ValueError("two")
        return x

    done = _apply_remote("map", fails_on_2, _Chunk([1, 2, 3, 4, 5, 6], budget=0.025))
    assert not done.plain
    assert calls == [1, 2, 3]
    assert [ok for ok, _ in done.items] == [True, False, True]
    assert [value for ok, value in done.items if ok] == [1, 3]


def test_apply_remote_runs_each_item_once_when_one_fails_mid_chunk() -> None:
    """A map chunk comes back as plain values while every item succeeds; at the first
    failure it turns to (ok, value) pairs without running the failed item again."""
    from threadwise._stage import _apply_remote, _Chunk

    calls: list[int] = []

    def fails_on_3(x: int) -> int:
        calls.append(x)
        if x == 3:
            raise ValueError("three")
        return x * 10

    done = _apply_remote("map", fails_on_3, _Chunk([1, 2, 3, 4, 5]))
    assert calls == [1, 2, 3, 4, 5]  # each item once, the failed one included
    assert not done.plain
    assert [ok for ok, _ in done.items] == [True, True, False, True, True]
    assert [value for ok, value in done.items if ok] == [10, 20, 40, 50]
    error = done.items[2][1]
    assert isinstance(error, ValueError)
    assert any("remote traceback" in note for note in error.__notes__)
    assert _apply_remote("map", fails_on_3, _Chunk([1, 2])).items == [10, 20]
    # flat_map and the other kinds always come back as pairs
    flat = _apply_remote("flat_map", lambda x: [x, x], _Chunk([1, 2]))
    assert not flat.plain
    assert flat.items == [(True, [1, 1]), (True, [2, 2])]
    # a plain chunk crosses a process boundary as it is
    import pickle

    again = pickle.loads(pickle.dumps(_apply_remote("map", fails_on_3, _Chunk([1, 2]))))
    assert again.plain
    assert again.items == [10, 20]


def test_a_remote_map_keeps_results_and_failures_when_a_chunk_turns_to_pairs() -> None:
    """Through a whole map on a thread pool executor: a chunk with a failure mid-way still
    gives every other item's value once, and on_error="skip" accounts for the failure."""
    calls: list[int] = []
    lock = threading.Lock()

    def fails_on_7(x: int) -> int:
        with lock:
            calls.append(x)
        if x == 7:
            raise ValueError("seven")
        return x * 2

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        pipeline = tw.Pipeline(range(20)).map(
            fails_on_7, executor=pool, chunk_size=5, on_error="skip"
        )
        values = list(pipeline)
    assert values == [x * 2 for x in range(20) if x != 7]
    assert sorted(calls) == list(range(20))
    report = pipeline.report
    assert report is not None
    assert report.accounted
    stage = report.stages[0]
    assert (stage.completed, stage.failed) == (19, 1)
    assert [item for item, _ in stage.errors] == [7]


def test_remote_sizer_lends_the_last_chunk_of_the_first_round() -> None:
    sizer = RemoteChunkSizer(parallel=3)
    sizer.lending = True
    assert [sizer.size(), sizer.size()] == [1, 1]
    assert sizer.loan is None
    assert sizer.size() == Loan.ITEMS
    assert sizer.loan is not None
    sizer.record_remote(1, elapsed=0.011, work=0.001)
    assert sizer.size() in (89, 90)  # figures in: sized as usual


def test_remote_sizer_cuts_the_last_chunks_smaller() -> None:
    sizer = RemoteChunkSizer(parallel=2)
    sizer.record_remote(1, elapsed=0.017, work=0.007)  # 10 ms round trip, 7 ms items
    assert sizer.size() == 12  # 90 ms of work
    assert sizer.size_of_rest(40) == 12
    assert sizer.size_of_rest(20) == 10  # half of what is left (two at once)
    assert sizer.size_of_rest(12) == 8  # not below 6 round trips of work (60 ms)
    assert RemoteChunkSizer(5, parallel=2).size_of_rest(3) == 5  # a fixed size is kept


def test_remote_sizer_sends_larger_chunks_while_much_is_left() -> None:
    # Each chunk costs the client CPU and a worker a hand-over: 600 items of 7 ms on two
    # worker processes went in about 40 chunks of 15. While much is left, a chunk takes half
    # an even share of it, up to 25 round trips of work, shrinking as the rest does.
    sizer = RemoteChunkSizer(parallel=2)
    sizer.record_remote(1, elapsed=0.019, work=0.007)  # 12 ms round trip, 7 ms items
    assert sizer.size() == 15
    assert sizer.size_of_rest(595) == 42  # 25 round trips of work (300 ms)
    assert sizer.size_of_rest(120) == 30  # half of an even share (120 / 2 / 2)
    assert sizer.size_of_rest(40) == 15  # the usual size again
    # Slow items still go one at a time, trivial ones at most MAX_ITEMS at once.
    slow = RemoteChunkSizer(parallel=2)
    slow.record_remote(1, elapsed=1.012, work=1.0)
    assert slow.size_of_rest(100) == 1
    trivial = RemoteChunkSizer(parallel=2)
    trivial.record_remote(1000, elapsed=0.012, work=0.000_001)
    assert trivial.size_of_rest(10_000_000) == RemoteChunkSizer.MAX_ITEMS


def test_remote_figures_are_taken_by_the_thread_completing_the_chunk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A feeder waiting for the first figures goes on when the executor completes the chunk,
    not when the stage's thread wakes up later."""
    threads: list[str] = []
    record = RemoteChunkSizer.record_remote

    def noting(self: RemoteChunkSizer, items: int, elapsed: float, work: float) -> None:
        threads.append(threading.current_thread().name)
        record(self, items, elapsed, work)

    monkeypatch.setattr(RemoteChunkSizer, "record_remote", noting)
    with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="executor") as pool:
        assert list(tw.map(slowly, range(5), executor=pool)) == list(range(5))
    assert threads
    assert all(name.startswith("executor") for name in threads), threads


def test_outputs_of_slow_items_stream_from_the_first_round() -> None:
    """The large first chunk hands back what it did not reach, rather than run it all: the
    first outputs come while most items have not started."""
    started: list[int] = []

    def noted(x: int) -> int:
        started.append(x)
        time.sleep(0.02)
        return x

    n = 40
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        out = tw.map(noted, range(n), executor=pool, workers=2)
        first = [next(out), next(out)]  # the one-item chunk's, then the large chunk's first
        begun = len(started)
        assert [*first, *out] == list(range(n))
    assert begun <= n // 2, begun
