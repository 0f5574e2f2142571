"""The map/pipeline engine under hostile conditions: head-of-line blocking, sources that block or
fail part-way, fn raising Cancelled, start-up failures, joins that would never end, races."""

# The code under test is often a whole loop, so `pytest.raises` wraps blocks.
# ruff: noqa: PT012

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import threadwise as tw
from threadwise.testing import busy_threads  # idle cached threads retire at any time

WAIT = 10.0  # upper bound for anything the tests wait for; never reached when all is well


def double(x: int) -> int:
    return 2 * x


# -- no head-of-line blocking --------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1, None])
def test_a_slow_item_does_not_stop_later_items_ordered(chunk_size: int | None) -> None:
    # Item 0 waits until 300 later items were processed: far more than workers or chunks in
    # flight. If the ordered window stalled the workers behind item 0, it would wait in vain.
    later_done = threading.Semaphore(0)
    waited: list[bool] = []

    def fn(x: int) -> int:
        if x == 0:
            waited.append(all(later_done.acquire(timeout=WAIT) for _ in range(300)))
        else:
            later_done.release()
        return x

    results = list(tw.map(fn, range(1000), workers=4, chunk_size=chunk_size))
    assert waited == [True], "later items stopped while the oldest one was running"
    assert results == list(range(1000))


def test_a_slow_item_does_not_stop_later_stages() -> None:
    later_done = threading.Semaphore(0)
    waited: list[bool] = []

    def first(x: int) -> int:
        if x == 0:
            waited.append(all(later_done.acquire(timeout=WAIT) for _ in range(200)))
        return x

    def second(x: int) -> int:
        if x != 0:
            later_done.release()
        return x

    # An unordered stage passes later items on while its oldest one still runs.
    pipeline = tw.Pipeline(range(500)).map(first, workers=3, chunk_size=1, ordered=False)
    out = list(pipeline.map(second))
    assert waited == [True]
    assert sorted(out) == list(range(500))


# -- a source that blocks ------------------------------------------------------------------------


@pytest.mark.parametrize("burst", [1, 5, 3000])
@pytest.mark.parametrize("stages", [0, 1, 2])
def test_items_reach_the_caller_while_the_source_blocks(burst: int, stages: int) -> None:
    release = threading.Event()
    blocked = threading.Event()

    def source() -> Iterator[int]:
        yield from range(burst)
        blocked.set()
        release.wait(WAIT)  # a source stuck in a call that threadwise cannot interrupt
        yield burst

    pipeline: tw.Pipeline[int] = tw.Pipeline(source())
    for _ in range(stages):
        pipeline = pipeline.map(double, workers=2)
    received: list[int] = []
    seen_while_blocked = False
    try:
        for item in pipeline:
            received.append(item)
            if len(received) == burst:
                # Every item the source produced arrived while it is still blocked.
                seen_while_blocked = blocked.is_set() and not release.is_set()
                release.set()
    finally:
        release.set()
    assert seen_while_blocked
    assert received == [x * 2**stages for x in range(burst + 1)]


def test_first_result_of_a_slow_endless_source_comes_at_once() -> None:
    def source() -> Iterator[int]:
        i = 0
        while True:
            time.sleep(0.005)
            yield i
            i += 1

    started = time.monotonic()
    it = tw.map(double, source(), workers=4)
    assert next(it) == 0
    first = time.monotonic() - started
    assert [next(it) for _ in range(20)] == [2 * x for x in range(1, 21)]
    it.close()  # type: ignore[attr-defined]
    assert first < 2.0  # generous (a loaded machine); a held chunk would take 5 s


# -- a source that raises part-way ---------------------------------------------------------------


class SourceFailed(Exception):
    pass


def failing_source(n: int, pulled: list[int]) -> Iterator[int]:
    for i in range(n):
        pulled.append(i)
        yield i
    raise SourceFailed(n)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(min_value=0, max_value=5000),
    stages=st.integers(min_value=1, max_value=3),
    workers=st.integers(min_value=1, max_value=4),
    ordered=st.booleans(),
)
def test_a_source_failing_part_way_loses_no_item(
    n: int, stages: int, workers: int, ordered: bool
) -> None:
    pulled: list[int] = []
    pipeline: tw.Pipeline[int] = tw.Pipeline(failing_source(n, pulled))
    for _ in range(stages):
        pipeline = pipeline.map(double, workers=workers, ordered=ordered)
    received = 0
    with pytest.raises(SourceFailed):
        for _ in pipeline:
            received += 1
    report = pipeline.report
    assert report is not None
    # Every item the source gave is counted as read, and accounted for at every stage.
    assert report.source_read == len(pulled) == n
    assert report.accounted, report
    assert report.delivered >= received


def test_report_with_a_failing_source_counts_pulled_items_as_unsent() -> None:
    pulled: list[int] = []
    pipeline = tw.Pipeline(failing_source(3000, pulled)).map(double, workers=2)
    with pytest.raises(SourceFailed):
        pipeline.run()
    report = pipeline.report
    assert report is not None
    assert report.source_read == 3000
    first = report.stages[0]
    assert first.items_in + report.source_unsent == 3000
    assert report.accounted


# -- fn raising Cancelled by hand ----------------------------------------------------------------


def raise_cancelled_at_7(x: int) -> int:
    if x == 7:
        raise tw.Cancelled("raised by fn itself")
    return x


@pytest.mark.parametrize("chunk_size", [1, None])
@pytest.mark.parametrize("retries", [0, 1])
def test_fn_raising_cancelled_fails_its_item(chunk_size: int | None, retries: int) -> None:
    baseline = len(busy_threads())
    with pytest.raises(tw.Cancelled, match="raised by fn itself") as info:
        for _ in tw.map(
            raise_cancelled_at_7, range(100), workers=3, chunk_size=chunk_size, retries=retries
        ):
            pass
    assert "for item 7" in "\n".join(getattr(info.value, "__notes__", []))
    assert len(busy_threads()) == baseline


@pytest.mark.parametrize("kind", ["map", "filter", "each", "flat_map"])
def test_pipeline_stage_raising_cancelled_fails_the_run(kind: str) -> None:
    def fn(x: int) -> Any:
        raise_cancelled_at_7(x)
        return [x] if kind == "flat_map" else x

    pipeline = getattr(tw.Pipeline(range(50)), kind)(fn, workers=2)
    with pytest.raises(tw.Cancelled):
        pipeline.run(timeout=WAIT)
    report = pipeline.report
    assert report is not None
    assert report.stages[0].failed == 1
    assert report.accounted


# -- start-up failures ---------------------------------------------------------------------------


def failing_thread_start(fail_at: int, error: BaseException) -> Callable[[threading.Thread], None]:
    real_start = threading.Thread.start
    calls = 0
    lock = threading.Lock()

    def start(self: threading.Thread) -> None:
        nonlocal calls
        with lock:
            calls += 1
            n = calls
        if n == fail_at:
            raise error
        real_start(self)

    return start


@pytest.mark.parametrize("fail_at", [1, 2, 5])
@pytest.mark.parametrize(
    "error", [RuntimeError("can't start new thread"), KeyboardInterrupt()], ids=repr
)
def test_a_failed_start_up_leaves_no_thread(
    monkeypatch: pytest.MonkeyPatch, fail_at: int, error: BaseException
) -> None:
    baseline = len(busy_threads())
    monkeypatch.setattr(threading.Thread, "start", failing_thread_start(fail_at, error))
    with pytest.raises(type(error)):
        for _ in tw.map(double, range(100), workers=6):
            pass
    monkeypatch.undo()
    assert len(busy_threads()) == baseline


# -- joins that would never end ------------------------------------------------------------------


def test_a_thread_that_never_exits_is_abandoned_after_the_grace_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()
    # A close hook that blocks: the worker has finished its work but its thread cannot end.
    local: tw.ThreadLocal[int] = tw.ThreadLocal(lambda: 1, close=lambda _: release.wait(WAIT))
    pipeline = tw.Pipeline(range(10)).map(lambda x: x + local.get(), workers=2)
    started = time.monotonic()
    try:
        with caplog.at_level(logging.WARNING, logger="threadwise"):
            assert list(pipeline.iterate(grace=0.2)) == list(range(1, 11))
        elapsed = time.monotonic() - started
        report = pipeline.report
        assert report is not None
        assert report.abandoned, "the stuck threads are reported"
        assert all("map#1" in name for name in report.abandoned)
        assert "abandoned" in caplog.text
        assert elapsed < WAIT / 2
    finally:
        release.set()
        for thread in threading.enumerate():
            if "map#1" in thread.name:
                thread.join(WAIT)


# -- races (no reliance on the GIL) --------------------------------------------------------------


@pytest.fixture
def tiny_switch_interval() -> Iterator[None]:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


@pytest.mark.usefixtures("tiny_switch_interval")
def test_pipeline_names_are_unique_across_threads() -> None:
    names: list[str] = []
    lock = threading.Lock()

    # Like the shutdown test below, this holds with the GIL even without the lock (next() on
    # itertools.count is one C call); the lock is for free-threaded builds.
    def make() -> None:
        mine = [tw.Pipeline(range(1))._name for _ in range(2000)]
        with lock:
            names.extend(mine)

    threads = [threading.Thread(target=make) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(names)) == len(names) == 8000


@pytest.mark.usefixtures("tiny_switch_interval")
def test_shutdown_from_two_threads_runs_once() -> None:
    # Shutdown's check-and-set of "finished" is under a lock now. With the GIL, CPython 3.11-3.13
    # never switches threads between the check and the set (no eval-breaker point in between),
    # so this cannot fail on them even without the lock: it guards free-threaded builds.
    for _ in range(50):
        pipeline = tw.Pipeline(range(10**9)).map(double, workers=2)
        it = pipeline.iterate()
        next(it)
        from threadwise._run import Run

        runs: list[Run] = []
        # The generator's frame holds the run: find it to call shutdown from two threads.
        frame = it._chunks.gi_frame  # type: ignore[attr-defined]
        runs.append(frame.f_locals["run"])
        run = runs[0]
        calls: list[float] = []
        original = run._account_leftovers

        def counting(original: Callable[[], None] = original, calls: list[float] = calls) -> None:
            calls.append(time.monotonic())
            original()

        run._account_leftovers = counting  # type: ignore[method-assign]
        threads = [threading.Thread(target=run.shutdown, args=("stop",)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        it.close()  # type: ignore[attr-defined]
        assert len(calls) == 1
        report = pipeline.report
        assert report is not None
        assert report.accounted


@pytest.mark.usefixtures("tiny_switch_interval")
def test_counts_add_up_when_many_workers_are_cancelled_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Item 0 holds up an ordered run; the others pile up in the reorder window (a small one
    # here, so the workers also wait in it) until the whole run is cancelled at once.
    monkeypatch.setattr("threadwise._reorder.WINDOW_ITEMS", 64)
    monkeypatch.setattr("threadwise._reorder.WINDOW_ITEMS_PER_WORKER", 8)

    def run_once() -> tw.Pipeline[int]:
        done = 0
        count_lock = threading.Lock()
        window_full = threading.Event()

        def fn(x: int) -> int:
            nonlocal done
            if x == 0:
                tw.sleep(WAIT)  # cancellable
            with count_lock:
                done += 1
                if done >= 64:
                    window_full.set()
            return x

        pipeline = tw.Pipeline(range(20_000)).map(fn, workers=8, chunk_size=1)
        it = pipeline.iterate()
        with tw.CancelScope() as scope:
            # Cancel once the window is full, not after a fixed time: a loaded machine may
            # not have filled it within any fixed time.
            def cancel_when_full() -> None:
                window_full.wait(WAIT)
                scope.cancel()

            canceller = threading.Thread(target=cancel_when_full)
            canceller.start()
            for _ in it:
                pass
        canceller.join(WAIT)
        it.close()  # type: ignore[attr-defined]
        return pipeline

    for _ in range(20):
        pipeline = run_once()
        report = pipeline.report
        assert report is not None
        assert report.accounted, report
        assert report.abandoned == []
        assert report.stages[0].discarded >= 64  # the window held outputs when it was cancelled


# -- the pieces, directly --------------------------------------------------------------------------


def test_rescue_leaves_items_when_the_receiver_is_full_or_closed() -> None:
    from threadwise._feed import Feeder
    from threadwise._report import PipelineReport

    report = PipelineReport("p", [])
    inbox: tw.Queue[tuple[int, list[int]]] = tw.Queue(1)
    sent: list[tuple[int, list[int]]] = []
    refused: list[int] = []

    def deliver(seq: int, chunk: list[int]) -> None:
        try:
            inbox.put_nowait((seq, chunk))
        except tw.QueueClosed:
            refused.extend(chunk)  # the receiver accounts for what it refuses
            raise
        sent.append((seq, chunk))

    feeder = Feeder(iter([]), report, deliver, receiver=None, receiver_full=inbox.full)
    assert not feeder.rescue()  # nothing held
    feeder.fresh.extend([1, 2])
    assert feeder.rescue()
    assert sent == [(0, [1, 2])]
    feeder.fresh.extend([3])
    assert not feeder.rescue()  # the receiver is full: the items stay with the feeder
    assert list(feeder.fresh) == [3]
    inbox.get_nowait()
    inbox.close()
    assert not feeder.rescue()  # the run is stopping
    assert refused == [3]
    assert report.source_read == 3


def test_a_put_refused_at_shutdown_counts_its_items_as_not_run() -> None:
    from threadwise._run import Run
    from threadwise._stage import StageSpec

    run = Run("p", iter(range(10)), [StageSpec("map", double, "m")], None, 1.0)
    run.stages[0].inbox.close()
    with pytest.raises(tw.QueueClosed):
        run._to_first_stage(0, [1, 2, 3])
    assert (run.report.stages[0].items_in, run.report.stages[0].not_started) == (3, 3)
    run.shutdown(None)


def test_chunk_queue_is_bounded_by_items_as_well_as_chunks() -> None:
    import queue

    from threadwise._stage import ChunkQueue

    chunks = ChunkQueue(8, name="q", max_items=10)
    chunks.put_nowait((0, [0] * 25))  # larger than the item bound: an empty queue takes it
    assert chunks.full()
    with pytest.raises(queue.Full):
        chunks.put_nowait((1, [1]))
    assert chunks.get_nowait() == (0, [0] * 25)
    assert chunks.empty()
    chunks.put_nowait((1, [1] * 6))
    assert not chunks.full()
    chunks.put_nowait((2, [2] * 4))  # 10 items: full by items with 2 of 8 chunks
    assert chunks.full()
    assert chunks.qsize() == 8  # reported as full, whatever the chunks
    chunks.get_nowait()
    assert (chunks.qsize(), chunks.items, chunks.full()) == (1, 4, False)
    chunks.close()
    assert chunks.get_nowait() == (2, [2] * 4)
    with pytest.raises(tw.QueueClosed):
        chunks.get_nowait()
    assert chunks._describe_wait("put") == "Queue.put on 'q'"


def _parked_taker(chunks: Any) -> threading.Thread:
    """A thread that settles after a trivial chunk, once it is seen parked."""
    taker = threading.Thread(target=chunks.settle, args=(True,))
    taker.start()
    deadline = time.monotonic() + 5
    while chunks.awake != 1 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert chunks.awake == 1
    assert taker.is_alive()
    return taker


def test_chunk_queue_parks_a_second_taker_while_chunks_are_trivial() -> None:
    from threadwise._stage import ChunkQueue

    chunks = ChunkQueue(8, name="q", takers=2)
    taker = _parked_taker(chunks)
    chunks.settle(True)  # the last awake taker never parks
    assert chunks.awake == 1
    assert chunks.lone
    chunks.settle(False)  # a chunk that is not trivial: every taker works again
    taker.join(5)
    assert not taker.is_alive()
    assert (chunks.awake, chunks.lone) == (2, False)


def test_closing_a_chunk_queue_wakes_its_parked_takers() -> None:
    from threadwise._stage import ChunkQueue

    chunks = ChunkQueue(8, name="q", takers=2)
    taker = _parked_taker(chunks)
    chunks.close()
    taker.join(5)
    assert not taker.is_alive()
    assert chunks.awake == 2


def test_a_chunk_queue_that_stops_moving_wakes_its_parked_takers() -> None:
    from threadwise._stage import ChunkQueue

    chunks = ChunkQueue(8, name="q", takers=2)
    taker = _parked_taker(chunks)
    chunks.put_nowait((0, [1]))  # queued, and nobody takes it: the awake taker is held up
    taker.join(5)
    assert not taker.is_alive()
    assert (chunks.awake, chunks.lone) == (2, False)
    chunks.close()


def test_a_trivial_stream_whose_items_need_several_workers_at_once() -> None:
    # Workers parked while the chunks are trivial must come back when an item holds the
    # awake one up: each of four items, 10,000 apart (so in chunks of their own), waits for
    # the other three, in other workers.
    together = threading.Barrier(4, timeout=10)
    meeting = {50_000, 60_000, 70_000, 80_000}

    def fn(x: int) -> int:
        if x in meeting:
            together.wait()
        return x

    out = list(tw.map(fn, list(range(100_000)), workers=8, ordered=False))
    assert sorted(out) == list(range(100_000))


def test_weight_of_results() -> None:
    from threadwise._reorder import _weight

    class NoSize:
        def __sizeof__(self) -> int:
            raise RuntimeError("no size")

    assert _weight([]) == 0
    assert _weight([NoSize(), NoSize()]) == 2 * (64 + 8)
    assert _weight([b"x" * 1000]) > 1000


def test_filter_verdict_that_is_not_a_bool_fails_its_item() -> None:
    class Ambiguous:
        def __bool__(self) -> bool:
            raise ValueError("truth value is ambiguous")

    def verdict(x: int) -> object:
        return Ambiguous() if x == 5 else x % 2 == 0

    with pytest.raises(ValueError, match="ambiguous") as info:
        list(tw.Pipeline(range(10)).filter(verdict))
    assert "for item 5" in "\n".join(getattr(info.value, "__notes__", []))


def test_progress_info_is_read_only_and_compares_by_value() -> None:
    info = tw.ProgressInfo("d", 1, 10, 0.5, 2.0, 4.5)
    same = tw.ProgressInfo("d", 1, 10, 0.5, 2.0, 4.5, False)
    assert info == same
    assert hash(info) == hash(same)
    assert info != tw.ProgressInfo("d", 2, 10, 0.5, 2.0, 4.5)
    assert info != "d"
    assert repr(info).startswith("ProgressInfo(description='d', done=1, total=10")
    with pytest.raises(AttributeError, match="read-only"):
        info.done = 2  # type: ignore[misc]
    with pytest.raises(AttributeError, match="read-only"):
        del info.done  # type: ignore[misc]


def test_reports_print_their_counts() -> None:
    pipeline = tw.Pipeline(range(5), name="shown").map(double)
    report = pipeline.run()
    assert "StageReport(name='map#1', kind='map', workers=1, items_in=5" in repr(report.stages[0])
    assert repr(report).startswith("PipelineReport(name='shown', source_read=5, delivered=5")
    report.abandoned = ["shown-map#1-1"]
    assert "abandoned threads: shown-map#1-1" in str(report)
    assert tw.Pipeline(range(3)).run().bottleneck is None


def test_map_is_still_importable_from_its_old_module() -> None:
    from threadwise import _pipeline

    assert _pipeline.map is tw.map
    with pytest.raises(AttributeError, match="no_such_name"):
        _pipeline.no_such_name  # noqa: B018


def test_ctrl_c_during_the_shutdown_of_a_dropped_iterator_is_not_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Leaving the loop drops the iterator; its finaliser stops and joins the run. A Ctrl-C that
    # lands meanwhile cannot propagate out of a finaliser, so it must come again just after.
    from threadwise._run import Run

    original = Run.shutdown
    raised: list[str] = []

    def shutdown(self: Run, reason: str | None) -> None:
        original(self, reason)
        if not raised:
            raised.append(str(reason))
            raise KeyboardInterrupt  # as if Ctrl-C landed at the end of the shutdown

    monkeypatch.setattr(Run, "shutdown", shutdown)
    arrived_in_loop = False
    try:
        for _ in tw.map(double, range(100)):
            break
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            time.sleep(0.001)  # the Ctrl-C comes again here, in the caller's own code
    except KeyboardInterrupt:
        arrived_in_loop = True
    for thread in threading.enumerate():
        if thread.name == "threadwise Ctrl-C re-delivery":
            thread.join(WAIT)
    assert raised == ["the consumer stopped iterating"]
    assert arrived_in_loop
