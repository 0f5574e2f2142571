"""Pipelines: stages, ordering, failure and cancellation, retries, skipping, the report."""

# The code under test is often a whole loop, so `pytest.raises` wraps blocks.
# ruff: noqa: PT012

from __future__ import annotations

import gc
import itertools
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import Counted
from hypothesis import given, settings
from hypothesis import strategies as st

import threadwise as tw
from threadwise._stage import MIN_CHUNKS
from threadwise._state import all_states
from threadwise.testing import busy_threads  # idle cached threads retire at any time

WAIT = 5.0  # upper bound for anything the tests wait for; never reached when all is well


def names(argument: str, value: object) -> str:
    """A pattern matching a message that names ``argument`` and then shows ``value``'s repr."""
    return rf"\b{re.escape(argument)}\b.*{re.escape(repr(value))}"


def wait_until(predicate: Callable[[], bool]) -> None:
    """Poll ``predicate``; fail (from whichever thread calls it) if not true within WAIT."""
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.001)


def blocked_on(thread_name_suffix: str) -> str | None:
    """What the threadwise thread whose name ends with the suffix waits for, if anything."""
    states = all_states()
    for thread in threading.enumerate():
        if thread.name.endswith(thread_name_suffix):
            state = states.get(thread.ident or -1)
            return None if state is None else state.describe_blocked_on()
    return None


class Boom(Exception):
    pass


def inc(x: int) -> int:
    return x + 1


def double(x: int) -> int:
    return 2 * x


def is_even(x: int) -> bool:
    return x % 2 == 0


def check_report(report: tw.PipelineReport | None, n: int) -> tw.PipelineReport:
    """A finished run's report: every item read, delivered, accounted for."""
    assert report is not None
    assert report.accounted, report
    assert report.finished
    assert report.error is None
    assert report.cancelled is None
    assert report.source_read == n
    assert report.source_unsent == 0
    for stage in report.stages:
        assert stage.failed == 0
        assert stage.not_started == 0
        assert stage.completed == stage.items_in
    return report


# -- stages --------------------------------------------------------------------------------------


def test_map_filter_flat_map_batch_each() -> None:
    seen: list[int] = []
    lock = threading.Lock()

    def store(batch: list[int]) -> None:
        with lock:
            seen.extend(batch)

    pipeline = (
        tw.Pipeline(range(100), name="all")
        .map(inc, workers=4)
        .filter(is_even, workers=2)
        .flat_map(lambda x: [x, -x], workers=3)
        .batch(7)
        .each(store)
    )
    outputs = list(pipeline)
    expected_items = [y for x in range(1, 101) if x % 2 == 0 for y in (x, -x)]
    assert outputs == [expected_items[i : i + 7] for i in range(0, len(expected_items), 7)]
    assert [len(b) for b in outputs][-1] == len(expected_items) % 7  # the last batch is shorter
    assert seen == expected_items  # each saw every item, in order (one ordered worker)
    report = check_report(pipeline.report, 100)
    assert [s.kind for s in report.stages] == ["map", "filter", "flat_map", "batch", "each"]
    assert [s.items_in for s in report.stages] == [100, 100, 50, 100, len(outputs)]
    assert report.stages[-1].items_out == len(outputs)
    assert report.delivered == len(outputs)


def test_each_passes_items_through() -> None:
    touched: list[int] = []
    assert list(tw.Pipeline(range(20)).each(touched.append)) == list(range(20))
    assert touched == list(range(20))


def test_batch_sizes() -> None:
    assert list(tw.Pipeline(range(10)).batch(3)) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert list(tw.Pipeline(range(9)).batch(3)) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert list(tw.Pipeline([]).batch(3)) == []
    assert list(tw.Pipeline(range(2)).batch(5)) == [[0, 1]]


def test_batch_of_a_large_stream() -> None:
    batches = list(tw.Pipeline(range(10_001)).map(inc, workers=4).batch(100))
    assert [len(b) for b in batches] == [100] * 100 + [1]
    assert list(itertools.chain.from_iterable(batches)) == list(range(1, 10_002))


def test_pipeline_without_stages() -> None:
    assert list(tw.Pipeline(range(5000))) == list(range(5000))


@pytest.mark.parametrize("make", [list, tuple, lambda r: r], ids=["list", "tuple", "range"])
def test_every_kind_of_stage_reads_a_sliced_source(make: Callable[[range], Any]) -> None:
    """A tuple's or a range's slices reach the first stage as they are, not copied into
    lists: every kind of stage, fast or item by item, reads them like a list."""
    n = 10_000
    source = make(range(n))
    expected = list(range(n))
    for ordered in (True, False):

        def check(out: list[Any], want: list[Any], ordered: bool = ordered) -> None:
            assert out == want if ordered else sorted(out) == sorted(want)

        check(list(tw.Pipeline(source).map(inc, workers=3, ordered=ordered)), [*expected[1:], n])
        check(list(tw.Pipeline(source).each(inc, workers=3, ordered=ordered)), expected)
        check(
            list(tw.Pipeline(source).filter(is_even, workers=3, ordered=ordered)),
            expected[::2],
        )
        check(
            list(tw.Pipeline(source).flat_map(lambda x: [x], workers=3, ordered=ordered)),
            expected,
        )
        check(
            list(tw.Pipeline(source).map(inc, workers=3, ordered=ordered, retries=1)),
            [*expected[1:], n],
        )
        check(
            list(tw.Pipeline(source).each(inc, workers=3, ordered=ordered, on_error="skip")),
            expected,
        )
    batches = list(tw.Pipeline(source).batch(3000))
    assert [len(b) for b in batches] == [3000, 3000, 3000, 1000]
    assert all(type(b) is list for b in batches)
    assert list(tw.Pipeline(source)) == expected


@pytest.mark.parametrize("make", [tuple, lambda r: r], ids=["tuple", "range"])
def test_a_failure_in_a_sliced_chunk_names_its_item(make: Callable[[range], Any]) -> None:
    def fail_at_7777(x: int) -> int:
        if x == 7777:
            raise ValueError("boom")
        return x

    pipeline = tw.Pipeline(make(range(10_000))).map(fail_at_7777, workers=2)
    with pytest.raises(ValueError, match="boom") as info:
        list(pipeline)
    assert any("for item 7777" in note for note in info.value.__notes__)
    report = pipeline.report
    assert report is not None
    assert report.accounted, report
    assert report.stages[0].failed == 1


def test_each_stage_returns_a_new_pipeline() -> None:
    base = tw.Pipeline(range(5))
    doubled = base.map(double)
    assert doubled is not base
    assert list(base) == list(range(5))
    assert list(doubled) == [0, 2, 4, 6, 8]


def test_a_pipeline_over_a_list_runs_again() -> None:
    pipeline = tw.Pipeline(list(range(50))).map(double, workers=3)
    assert list(pipeline) == list(pipeline) == [2 * x for x in range(50)]


@pytest.mark.parametrize("stage_workers", [(1, 1), (4, 2), (8, 8)])
def test_unordered_stages_keep_every_item(stage_workers: tuple[int, int]) -> None:
    first, second = stage_workers
    pipeline = (
        tw.Pipeline(range(3000))
        .map(double, workers=first, ordered=False)
        .map(inc, workers=second, ordered=False)
    )
    assert Counter(pipeline) == Counter(2 * x + 1 for x in range(3000))
    check_report(pipeline.report, 3000)


def test_run_returns_the_report() -> None:
    pipeline = tw.Pipeline(range(1000), name="numbers").map(double, workers=2, name="double")
    report = pipeline.run()
    assert report is pipeline.report
    check_report(report, 1000)
    assert report.name == "numbers"
    assert report.delivered == 1000
    assert report.elapsed > 0
    stage = report.stages[0]
    assert (stage.name, stage.kind, stage.workers) == ("double", "map", 2)
    assert stage.items_out == 1000
    text = str(report)
    assert "numbers" in text
    assert "double" in text
    assert "bottleneck: double" in text


# -- the report ----------------------------------------------------------------------------------


def test_bottleneck_names_the_slow_stage() -> None:
    def slow(x: int) -> int:
        time.sleep(0.002)
        return x

    report = (
        tw.Pipeline(range(100))
        .map(inc, name="fast")
        .map(slow, name="slow")
        .map(inc, name="fast too")
        .run()
    )
    assert report.bottleneck == "slow"
    utilisation = {s.name: s.utilisation for s in report.stages}
    assert utilisation["slow"] > utilisation["fast"]
    assert utilisation["slow"] > utilisation["fast too"]


def test_retries_are_counted() -> None:
    n = 30
    attempts: Counter[int] = Counter()
    lock = threading.Lock()

    def flaky(x: int) -> int:
        with lock:
            attempts[x] += 1
            tries = attempts[x]
        if tries <= 2:
            raise Boom(x)
        return x

    pipeline = tw.Pipeline(range(n)).map(flaky, workers=4, retries=2, backoff=0.001)
    assert list(pipeline) == list(range(n))
    report = check_report(pipeline.report, n)
    assert report.stages[0].retries == 2 * n
    assert attempts == Counter({x: 3 for x in range(n)})


def test_retries_exhausted_fails_the_run() -> None:
    def always(x: int) -> int:
        raise Boom(x)

    pipeline = tw.Pipeline(range(3)).map(always, retries=2, backoff=0.001)
    with pytest.raises(Boom):
        pipeline.run()
    assert pipeline.report is not None
    assert pipeline.report.accounted
    assert pipeline.report.stages[0].retries == 2
    assert pipeline.report.stages[0].failed == 1


def test_skip_records_the_failures() -> None:
    def fn(x: int) -> int:
        if x % 5 == 0:
            raise Boom(x)
        return x

    pipeline = tw.Pipeline(range(50)).map(fn, workers=3, on_error="skip")
    assert list(pipeline) == [x for x in range(50) if x % 5]
    report = pipeline.report
    assert report is not None
    assert report.accounted
    assert report.finished
    assert report.error is None
    stage = report.stages[0]
    assert stage.failed == 10
    assert stage.completed == 40
    assert stage.items_out == 40
    assert sorted(item for item, _ in stage.errors) == list(range(0, 50, 5))
    for item, exc in stage.errors:
        assert isinstance(exc, Boom)
        assert exc.args == (item,)


def test_skip_in_filter_flat_map_and_each() -> None:
    def bad_on_3(x: int) -> int:
        if x == 3:
            raise Boom(x)
        return x

    pipeline = (
        tw.Pipeline(range(10))
        .filter(bad_on_3, on_error="skip")
        .flat_map(lambda x: [bad_on_3(x + 1)], on_error="skip")
        .each(bad_on_3, on_error="skip")
    )
    # filter drops 0 (falsy) and skips 3; flat_map skips 2 (2+1 == 3); each never sees a 3.
    assert list(pipeline) == [x + 1 for x in range(1, 10) if x not in (2, 3)]
    report = pipeline.report
    assert report is not None
    assert report.accounted
    assert [s.failed for s in report.stages] == [1, 1, 0]


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(min_value=0, max_value=400),
    failing=st.sets(st.integers(min_value=0, max_value=399), max_size=40),
    workers=st.integers(min_value=1, max_value=6),
    ordered=st.booleans(),
)
def test_counts_add_up_when_items_are_skipped(
    n: int, failing: set[int], workers: int, ordered: bool
) -> None:
    failing = {x for x in failing if x < n}

    def fn(x: int) -> int:
        if x in failing:
            raise Boom(x)
        return x

    pipeline = (
        tw.Pipeline(range(n))
        .map(inc, workers=workers, ordered=ordered)
        .map(lambda x: fn(x - 1), workers=workers, ordered=ordered, on_error="skip")
        .filter(lambda x: True, workers=2, ordered=ordered)
    )
    outputs = list(pipeline)
    expected = [x for x in range(n) if x not in failing]
    if ordered:
        assert outputs == expected
    else:
        assert sorted(outputs) == expected
    report = pipeline.report
    assert report is not None
    assert report.accounted, report
    assert report.finished
    stage = report.stages[1]
    assert stage.completed + stage.failed == n
    assert stage.failed == len(failing)
    assert stage.not_started == 0
    assert {item - 1 for item, _ in stage.errors} == failing
    assert report.delivered == len(expected)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=2000),
    failing=st.sets(st.integers(min_value=0, max_value=1999), min_size=1, max_size=5),
    workers=st.integers(min_value=1, max_value=6),
    ordered=st.booleans(),
)
def test_counts_add_up_when_a_failure_cancels_the_run(
    n: int, failing: set[int], workers: int, ordered: bool
) -> None:
    failing = {x % n for x in failing}
    baseline = len(busy_threads())

    def fn(x: int) -> int:
        if x in failing:
            raise Boom(x)
        return x

    pipeline = (
        tw.Pipeline(range(n))
        .map(inc, workers=workers, ordered=ordered)
        .map(lambda x: fn(x - 1), workers=workers, ordered=ordered)
        .map(inc, workers=2, ordered=ordered)
    )
    delivered = 0
    with pytest.raises(Boom) as info:
        for _ in pipeline:
            delivered += 1
    assert info.value.args[0] in failing
    report = pipeline.report
    assert report is not None
    assert report.accounted, report
    assert not report.finished
    assert report.error is info.value
    assert report.cancelled is not None
    assert report.stages[1].failed >= 1
    assert sum(s.failed for s in report.stages) == report.stages[1].failed
    assert report.delivered == delivered
    assert len(busy_threads()) == baseline


# -- failure and cancellation --------------------------------------------------------------------


def test_failing_middle_stage_while_the_source_is_blocked() -> None:
    """Stage 'stuck' never finishes an item, so the queues fill up and the source blocks on a
    full inbox; only then does stage 'failing' fail. Every blocked thread must wake up, the
    failure is raised, and every item is accounted for."""
    release = tw.Event()  # never set: 'stuck' waits until it is cancelled
    source = Counted(itertools.count())
    failer: list[int] = []

    def stuck(x: int) -> int:
        release.wait()
        return x

    def all_others_blocked() -> bool:
        threads = [
            t
            for t in threading.enumerate()
            if t.name.startswith("jam-") and t.ident != threading.get_ident()
        ]
        states = all_states()
        waits = [states[t.ident].describe_blocked_on() for t in threads if t.ident in states]
        source_waits = blocked_on("-source") or ""
        return (
            len(waits) == len(threads) == 5  # source, first, the other 'failing', 2 'stuck'
            and all(waits)
            and source_waits.startswith("Queue.put")
        )

    def fail_once_everything_is_blocked(x: int) -> int:
        if x == 1:
            failer.append(x)
            wait_until(all_others_blocked)
            raise Boom(x)
        return x

    pipeline = (
        tw.Pipeline(source, name="jam")
        .map(inc, name="first")
        .map(
            fail_once_everything_is_blocked,
            workers=2,
            ordered=False,
            chunk_size=1,
            name="failing",
        )
        .map(stuck, workers=2, name="stuck")
    )
    baseline = len(busy_threads())
    started = time.monotonic()
    with pytest.raises(Boom) as info:
        pipeline.run()
    assert time.monotonic() - started < WAIT
    assert len(busy_threads()) == baseline
    assert failer == [1]
    report = pipeline.report
    assert report is not None
    assert report.error is info.value
    assert report.accounted, report
    assert not report.finished
    assert report.cancelled is not None
    assert "failing" in report.cancelled
    assert report.stages[1].failed == 1
    assert report.stages[2].completed == 0
    assert report.stages[2].not_started == report.stages[2].items_in > 0
    assert report.source_read == source.pulled
    notes = getattr(info.value, "__notes__", [])
    assert any("'failing'" in note and "item 1" in note for note in notes), notes


def test_failure_traceback_shows_the_stage_function() -> None:
    def parse_record(x: int) -> int:
        if x == 7:
            raise Boom(x)
        return x

    with pytest.raises(Boom) as info:
        list(tw.Pipeline(range(20)).map(parse_record, workers=3).map(inc))
    frames = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert "parse_record" in frames


def test_a_failing_source_is_raised() -> None:
    def source() -> Iterator[int]:
        yield from range(10)
        raise Boom("source")

    pipeline = tw.Pipeline(source(), name="src").map(inc)
    with pytest.raises(Boom, match="source") as info:
        pipeline.run()
    notes = getattr(info.value, "__notes__", [])
    assert any("source" in note and "'src'" in note for note in notes), notes
    assert pipeline.report is not None
    assert pipeline.report.accounted
    assert pipeline.report.error is info.value


@pytest.mark.parametrize("ordered", [True, False])
def test_queued_items_never_start_after_a_failure(ordered: bool) -> None:
    """Explicit sequencing: stage 'b' fails on item 0 while its inbox is full; its other
    worker returns from item 1 only after the cancel has reached the blocked source (which
    then exits). The items still queued in front of 'b' must never start."""
    source = Counted(iter(range(100)))
    failed = threading.Event()
    started: list[int] = []
    pulled: list[int] = []

    def fn(x: int) -> int:
        started.append(x)
        if x == 0:
            # Items 0 and 1 in the workers of 'b', then its full inbox, one held by 'a'
            # (blocked on that inbox), the full inbox of 'a', one held by the blocked source.
            # A sender is woken only once its queue is down to half, which nothing brings
            # them to while both workers of 'b' are busy here: what the source read is final.
            wait_until(lambda: 1 in started)
            wait_until(lambda: (blocked_on("q-a-1") or "").startswith("Queue.put"))
            wait_until(lambda: (blocked_on("q-source") or "").startswith("Queue.put"))
            pulled.append(source.pulled)
            failed.set()
            raise Boom(x)
        if x == 1:
            assert failed.wait(WAIT)
            wait_until(lambda: not any(t.name == "q-source" for t in threading.enumerate()))
        return x

    pipeline = (
        tw.Pipeline(source, name="q")
        .map(inc, chunk_size=1, name="a")
        .map(lambda x: fn(x - 1), workers=2, ordered=ordered, chunk_size=1, name="b")
        .map(inc, name="c")
    )
    with pytest.raises(Boom):
        pipeline.run()
    assert sorted(started) == [0, 1]
    # Every queue full and every thread holding an item, but for the items taken from a full
    # queue (the two of 'b', the one of 'a') after which its sender was not woken.
    full = 2 + max(MIN_CHUNKS, 2 * 2) + 1 + max(MIN_CHUNKS, 2 * 1) + 1
    assert full - 3 <= pulled[0] <= full
    assert source.pulled == pulled[0]
    assert pipeline.report is not None
    assert pipeline.report.accounted


def test_breaking_out_of_the_loop_cancels_and_accounts() -> None:
    baseline = len(busy_threads())
    pipeline = tw.Pipeline(itertools.count(), name="endless").map(double, workers=4).map(inc)
    for i, result in enumerate(pipeline):
        assert result == 2 * i + 1
        if i == 500:
            break
    assert len(busy_threads()) == baseline
    report = pipeline.report
    assert report is not None
    assert report.accounted, report
    assert not report.finished
    assert report.error is None
    assert report.cancelled is not None
    assert report.delivered >= 501


@pytest.mark.parametrize("stop_after", [1, 500, 3000])
def test_outputs_dropped_by_an_early_stop_are_counted_as_discarded(stop_after: int) -> None:
    """Every output a map stage made was either handed on or counted as discarded."""
    pipeline = (
        tw.Pipeline(itertools.count(), name="drop")
        .map(double, workers=4, name="first")
        .map(inc, workers=2, name="second")
    )
    for i, _ in enumerate(pipeline, start=1):
        if i == stop_after:
            break
    report = pipeline.report
    assert report is not None
    assert report.accounted, report
    first, second = report.stages
    assert first.completed == first.items_out + first.discarded, first
    # The last stage hands its outputs to the consumer (delivered counts whole chunks).
    assert second.completed == report.delivered + second.discarded, (report.delivered, second)


def test_deleting_the_iterator_cancels_the_stages() -> None:
    baseline = len(busy_threads())
    it = iter(tw.Pipeline(itertools.count()).map(double, workers=4).filter(is_even))
    assert next(it) == 0
    del it
    gc.collect()
    assert len(busy_threads()) == baseline


def test_iterate_timeout() -> None:
    baseline = len(busy_threads())

    def stuck(x: int) -> int:
        tw.sleep(60)
        return x

    pipeline = tw.Pipeline(range(100)).map(inc).map(stuck, workers=3)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        list(pipeline.iterate(timeout=0.2))
    assert time.monotonic() - started < WAIT
    assert len(busy_threads()) == baseline
    report = pipeline.report
    assert report is not None
    assert report.accounted, report
    assert report.cancelled is not None
    assert "timed out" in report.cancelled


def test_run_timeout() -> None:
    def stuck(x: int) -> int:
        tw.sleep(60)
        return x

    pipeline = tw.Pipeline(range(10)).map(stuck)
    with pytest.raises(TimeoutError):
        pipeline.run(timeout=0.1)
    assert pipeline.report is not None
    assert pipeline.report.accounted


def test_rate_limits_a_stage() -> None:
    times: list[float] = []

    def fn(x: int) -> int:
        times.append(time.monotonic())
        return x

    assert list(tw.Pipeline(range(10)).map(fn, workers=3, rate=20)) == list(range(10))
    assert max(times) - min(times) >= 0.44  # 9 gaps of 50 ms


def test_cancelling_the_consumer_cancels_the_pipeline() -> None:
    """The stages run under the consumer's cancel scope."""
    entered = threading.Event()

    def stuck(x: int) -> int:
        entered.set()
        tw.sleep(60)
        return x

    def consume() -> list[int]:
        return list(tw.Pipeline(range(10)).map(stuck, workers=2))

    task = tw.spawn(consume)
    assert entered.wait(WAIT)
    task.cancel()
    with pytest.raises(tw.TaskCancelled):
        task.result(timeout=WAIT)


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (-1, ValueError), ("8", TypeError)])
@pytest.mark.parametrize("stage", ["map", "filter", "flat_map", "each"])
def test_bad_workers(stage: str, value: Any, error: type[Exception]) -> None:
    method = getattr(tw.Pipeline(range(3)), stage)
    with pytest.raises(error, match=names("workers", value)):
        method(inc, workers=value)


@pytest.mark.parametrize("stage", ["map", "filter", "flat_map", "each"])
def test_non_callable_stage_function(stage: str) -> None:
    method = getattr(tw.Pipeline(range(3)), stage)
    with pytest.raises(TypeError, match=names("fn", 42)):
        method(42)


@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (-2, ValueError), ("3", TypeError)])
def test_bad_batch_size(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match=names("n", value)):
        tw.Pipeline(range(3)).batch(value)


@pytest.mark.parametrize("stage", ["map", "filter", "flat_map", "each"])
def test_bad_on_error(stage: str) -> None:
    method = getattr(tw.Pipeline(range(3)), stage)
    with pytest.raises(ValueError, match=names("on_error", "ignore")):
        method(inc, on_error="ignore")


@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (-1, ValueError), ("x", TypeError)])
@pytest.mark.parametrize("stage", ["map", "each"])
def test_bad_rate(stage: str, value: Any, error: type[Exception]) -> None:
    method = getattr(tw.Pipeline(range(3)), stage)
    with pytest.raises(error, match=names("rate", value)):
        method(inc, rate=value)


@pytest.mark.parametrize("stage", ["map", "flat_map", "each"])
def test_bad_retries(stage: str) -> None:
    method = getattr(tw.Pipeline(range(3)), stage)
    with pytest.raises(ValueError, match=names("retries", -1)):
        method(inc, retries=-1)


@pytest.mark.parametrize("source", [42, None, 1.5])
def test_non_iterable_source(source: Any) -> None:
    with pytest.raises(TypeError, match=names("source", source)):
        tw.Pipeline(source)


def test_bad_progress() -> None:
    pipeline = tw.Pipeline(range(3)).map(inc)
    with pytest.raises(TypeError, match=r"\bprogress\b.*42"):
        pipeline.run(progress=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"\bprogress\b.*42"):
        pipeline.iterate(progress=42)  # type: ignore[arg-type]


def test_bad_executor() -> None:
    with pytest.raises(ValueError, match=names("executor", "pool")):
        tw.Pipeline(range(3)).map(inc, executor="pool")  # type: ignore[arg-type]


# -- Ctrl-C --------------------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT to a child process")
def test_sigint_stops_a_running_pipeline(tmp_path: Path) -> None:
    script = tmp_path / "pipeline_sigint.py"
    script.write_text(
        textwrap.dedent(
            """
            import itertools

            import threadwise as tw

            def slow(x):
                tw.sleep(0.5)
                return x

            announced = False
            for item in (
                tw.Pipeline(itertools.count(), name="slow")
                .map(slow, workers=4)
                .map(lambda x: x + 1)
            ):
                if not announced:
                    print("ready", flush=True)
                    announced = True
            """
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the first item has flowed through
        assert line == "ready\n", proc.communicate(timeout=WAIT)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        seconds = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "KeyboardInterrupt" in err, err
    assert proc.returncode != 0  # -SIGINT: died of the re-raised KeyboardInterrupt
    assert seconds < 1.0, (seconds, err)
