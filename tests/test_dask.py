"""The Dask executor path: same results as threads, errors raised locally."""

from __future__ import annotations

import concurrent.futures
import functools
import traceback
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import threadwise as tw

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")


class Boom(Exception):
    pass


def square(x: int) -> int:
    return x * x


def explode_on_13(x: int) -> int:
    if x == 13:
        raise Boom(f"bad item {x}")
    return x


def pair(x: int) -> list[int]:
    return [x, -x]


@pytest.fixture(scope="module")
def executor() -> Iterator[concurrent.futures.Executor]:
    """An in-process cluster, warmed up before the per-test thread snapshot: Dask starts
    long-lived threads of its own (the event loop, 'Dask-Offload') on first use."""
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        # Any free port: None still binds the scheduler's HTTP server to 8787, maybe taken.
        dashboard_address=":0",
    )
    client = distributed.Client(cluster)
    try:
        pool = client.get_executor()
        assert list(tw.map(square, range(20), executor=pool)) == [x * x for x in range(20)]
        with pytest.raises(Boom):
            list(tw.map(explode_on_13, range(20), executor=pool))
        yield pool
    finally:
        client.close()
        cluster.close()


@pytest.mark.parametrize("ordered", [True, False])
def test_map_matches_threads(executor: concurrent.futures.Executor, ordered: bool) -> None:
    items = range(100)
    on_dask = list(tw.map(square, items, workers=4, ordered=ordered, executor=executor))
    on_threads = list(tw.map(square, items, workers=4, ordered=ordered))
    if ordered:
        assert on_dask == on_threads == [x * x for x in items]
    else:
        assert Counter(on_dask) == Counter(on_threads) == Counter(x * x for x in items)


@pytest.mark.parametrize("ordered", [True, False])
def test_pipeline_stage_matches_threads(
    executor: concurrent.futures.Executor, ordered: bool
) -> None:
    def build(pool: concurrent.futures.Executor | None) -> tw.Pipeline[int]:
        return (
            tw.Pipeline(range(100))
            .map(square, workers=3, ordered=ordered, executor=pool)
            .filter(lambda x: x % 2 == 0)
        )

    on_dask = build(executor)
    on_threads = build(None)
    dask_out = list(on_dask)
    thread_out = list(on_threads)
    expected = [x * x for x in range(100) if x % 2 == 0]
    if ordered:
        assert dask_out == thread_out == expected
    else:
        assert Counter(dask_out) == Counter(thread_out) == Counter(expected)
    assert on_dask.report is not None
    assert on_dask.report.accounted
    assert on_dask.report.finished
    assert on_dask.report.stages[0].completed == 100


def test_error_on_the_cluster_is_raised_locally(executor: concurrent.futures.Executor) -> None:
    with pytest.raises(Boom, match="bad item 13") as info:
        list(tw.map(explode_on_13, range(50), workers=2, executor=executor))
    notes = getattr(info.value, "__notes__", [])
    assert any("stage 'map'" in note and "item 13" in note for note in notes), notes


def test_error_on_the_cluster_shows_where_fn_failed(
    executor: concurrent.futures.Executor,
) -> None:
    """As with threads, the printed error leads to the line in ``fn`` that raised (a frame
    of the traceback, or the remote traceback carried along in a note)."""
    with pytest.raises(Boom) as info:
        list(tw.map(explode_on_13, range(50), workers=2, executor=executor))
    printed = "".join(traceback.format_exception(info.value))
    assert 'raise Boom(f"bad item {x}")' in printed, printed


def test_pipeline_error_on_the_cluster_is_raised_and_accounted(
    executor: concurrent.futures.Executor,
) -> None:
    pipeline = tw.Pipeline(range(50)).map(explode_on_13, workers=2, executor=executor)
    with pytest.raises(Boom):
        pipeline.run()
    report = pipeline.report
    assert report is not None
    assert report.accounted
    assert isinstance(report.error, Boom)
    assert report.stages[0].failed == 1


def test_skip_and_retries_on_the_cluster(executor: concurrent.futures.Executor) -> None:
    pipeline = tw.Pipeline(range(30)).map(
        explode_on_13, workers=2, executor=executor, on_error="skip", retries=1, backoff=0.001
    )
    assert list(pipeline) == [x for x in range(30) if x != 13]
    report = pipeline.report
    assert report is not None
    assert report.accounted
    stage = report.stages[0]
    assert stage.failed == 1
    assert stage.retries == 1
    assert [item for item, _ in stage.errors] == [13]
    assert isinstance(stage.errors[0][1], Boom)


def test_flat_map_stage_on_the_cluster(executor: concurrent.futures.Executor) -> None:
    pipeline = tw.Pipeline(range(10)).map(square, executor=executor).flat_map(pair)
    assert list(pipeline) == [y for x in range(10) for y in (x * x, -x * x)]


def fail_first_time(marks: str, x: int) -> int:
    """Fails the first call for each item (a mark file remembers it, across processes)."""
    mark = Path(marks) / str(x)
    if not mark.exists():
        mark.touch()
        raise Boom(f"first try of {x}")
    return x


def test_retries_on_the_cluster_run_again(
    executor: concurrent.futures.Executor, tmp_path: Path
) -> None:
    """A retry is a task of its own: Dask names tasks by a hash of their arguments and hands
    back the held outcome of an equal task, so a resubmitted chunk must not look equal."""
    fn = functools.partial(fail_first_time, str(tmp_path))
    pipeline = tw.Pipeline(range(6)).map(
        fn, executor=executor, chunk_size=1, retries=2, backoff=0.001
    )
    assert list(pipeline) == list(range(6))


def count_call(calls: str, x: int) -> int:
    (Path(calls) / uuid.uuid4().hex).touch()
    return x


def test_an_equal_task_held_elsewhere_does_not_stand_in_for_a_chunk(
    executor: concurrent.futures.Executor, tmp_path: Path
) -> None:
    """Dask names a task by a hash of its arguments and hands back the outcome of an equal
    task still held: a chunk submitted by a stage must run (fn's side effects happen)."""
    from threadwise._stage import _apply_remote, _Chunk

    fn = functools.partial(count_call, str(tmp_path))
    held = executor.submit(_apply_remote, "map", fn, _Chunk([5]))
    held.result()
    assert list(tw.map(fn, [5], executor=executor)) == [5]
    assert len(list(tmp_path.iterdir())) == 2


def test_chunks_go_to_dask_as_impure_tasks(
    executor: concurrent.futures.Executor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``pure=False``: Dask gives each chunk a fresh key instead of hashing the function and
    every item (client CPU for nothing), and never stands an equal task's outcome in."""
    client = executor._client  # type: ignore[attr-defined]
    submit = client.submit
    seen: list[object] = []

    def noting(*args: object, **kwargs: object) -> object:
        seen.append(kwargs.get("pure"))
        return submit(*args, **kwargs)

    monkeypatch.setattr(client, "submit", noting)
    pipeline = tw.Pipeline(range(100)).map(explode_on_13, executor=executor, on_error="skip")
    pipeline = pipeline.map(square, workers=2, executor=executor, retries=1, backoff=0.001)
    assert list(pipeline) == [x * x for x in range(100) if x != 13]
    assert seen
    assert all(pure is False for pure in seen), seen


def test_a_stage_knows_how_many_chunks_the_cluster_runs_at_once(
    executor: concurrent.futures.Executor,
) -> None:
    """The first round sends one chunk per slot: a cluster's threads (2 here), a pool's
    workers; not known otherwise (the stage's workers are used)."""
    from threadwise.dask import executor_threads

    assert executor_threads(executor) == 2
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        assert executor_threads(pool) == 3

    class Bare(concurrent.futures.Executor):
        pass

    assert executor_threads(Bare()) is None
