"""tw.Executor: a concurrent.futures executor whose cancel reaches running calls.

The stdlib behaviours are covered by CPython's own tests (tests/compat/); these test what
threadwise adds and the edges around it. Latency bounds here are generous (the machine may be
loaded); benchmarks/bench_executor.py measures the real figures.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextvars
import gc
import logging
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import Counted

import threadwise as tw
from threadwise import _threads

WAKE = 0.5  # the goal is 10 ms; this bound only catches "did not wake at all"


def wait_running(future: cf.Future[Any], task_blocked: bool = True) -> None:
    """Wait until the future's call is running (and blocked in a threadwise wait)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        task = getattr(future, "_tw_call", None)
        started = future.running() and task is not None
        if started and (not task_blocked or task.state is tw.State.BLOCKED):
            return
        time.sleep(0.001)
    raise AssertionError("the call did not start")


def cancel_and_time(future: cf.Future[Any]) -> float:
    start = time.monotonic()
    assert future.cancel()
    cf.wait([future], timeout=10)
    return time.monotonic() - start


# -- cancel reaches running calls ---------------------------------------------------------------


def _blocked_in(kind: str) -> tuple[Callable[[], object], Callable[[], None]]:
    """A call that blocks in the threadwise primitive ``kind``, and how to clean up after."""
    if kind == "sleep":
        return lambda: tw.sleep(60), lambda: None
    if kind == "lock":
        lock = tw.Lock()
        lock.acquire()
        return lock.acquire, lock.release
    if kind == "rlock":
        rlock = tw.RLock()
        holder_done = threading.Event()
        held = threading.Event()

        def hold() -> None:
            with rlock:
                held.set()
                holder_done.wait()

        holder = threading.Thread(target=hold)
        holder.start()
        held.wait()

        def release() -> None:
            holder_done.set()
            holder.join()

        return rlock.acquire, release
    if kind == "event":
        return tw.Event().wait, lambda: None
    if kind == "semaphore":
        return tw.Semaphore(0).acquire, lambda: None
    if kind == "condition":
        condition = tw.Condition()

        def wait() -> None:
            with condition:
                condition.wait()

        return wait, lambda: None
    if kind == "queue":
        return tw.Queue[int]().get, lambda: None
    if kind == "full queue":
        queue = tw.Queue[int](maxsize=1)
        queue.put(1)
        return lambda: queue.put(2), lambda: None
    assert kind == "task wait"
    inner = tw.spawn(tw.sleep, 60)

    def stop_inner() -> None:
        inner.cancel()
        inner.join()

    return inner.result, stop_inner


PRIMITIVES = [
    "sleep",
    "lock",
    "rlock",
    "event",
    "semaphore",
    "condition",
    "queue",
    "full queue",
    "task wait",
]


@pytest.mark.parametrize("kind", PRIMITIVES)
def test_cancel_wakes_a_running_call_blocked_in(kind: str) -> None:
    call, cleanup = _blocked_in(kind)
    try:
        with tw.Executor(2) as ex:
            future = ex.submit(call)
            wait_running(future)
            took = cancel_and_time(future)
            assert future.cancelled()
            assert future.done()
            with pytest.raises(cf.CancelledError):
                future.result()
            assert took < WAKE
    finally:
        cleanup()


def test_cancel_of_a_queued_call_is_the_stdlib_cancel() -> None:
    gate = tw.Event()
    with tw.Executor(1) as ex:
        first = ex.submit(gate.wait)
        queued = ex.submit(lambda: "never")
        assert queued.cancel()
        assert queued.cancelled()
        gate.set()
        assert first.result() is True
    assert queued.cancelled()


def test_cancel_after_the_end_returns_false() -> None:
    with tw.Executor(1) as ex:
        future = ex.submit(lambda: 7)
        assert future.result() == 7
        assert not future.cancel()
        assert future.result() == 7


def test_cancel_twice_while_running() -> None:
    with tw.Executor(1) as ex:
        future = ex.submit(tw.sleep, 60)
        wait_running(future)
        assert future.cancel()
        assert future.cancel()
        cf.wait([future])
        assert future.cancelled()


def test_a_call_that_never_checks_ends_cancelled_too_late() -> None:
    release = threading.Event()
    started = threading.Event()

    def stubborn() -> int:
        started.set()
        release.wait()  # a stdlib wait: not a threadwise checkpoint
        return 42

    with tw.Executor(1) as ex:
        future = ex.submit(stubborn)
        started.wait()
        assert future.cancel()  # requested; the call cannot see it
        assert not future.done()
        release.set()
        with pytest.raises(tw.CancelledTooLate, match="did not reach a threadwise checkpoint") as e:
            future.result()
    assert e.value.value == 42
    assert e.value.__cause__ is None
    assert not future.cancelled()  # it was not: it ran to its end
    assert isinstance(future.exception(), cf.CancelledError)


def test_cancelled_too_late_keeps_the_calls_exception() -> None:
    release = threading.Event()
    started = threading.Event()

    def stubborn() -> None:
        started.set()
        release.wait()
        raise KeyError("late")

    with tw.Executor(1) as ex:
        future = ex.submit(stubborn)
        started.wait()
        future.cancel()
        release.set()
        with pytest.raises(tw.CancelledTooLate, match="KeyError") as e:
            future.result()
    assert isinstance(e.value.__cause__, KeyError)


def test_cancelled_raised_by_hand_is_a_failure() -> None:
    def raises() -> None:
        raise tw.Cancelled("by hand")

    with tw.Executor(1) as ex:
        future = ex.submit(raises)
        with pytest.raises(tw.Cancelled, match="by hand"):
            future.result()
        assert not future.cancelled()


def test_shutdown_cancel_futures_cancels_running_and_queued_calls() -> None:
    ex = tw.Executor(2)
    running = [ex.submit(tw.sleep, 60) for _ in range(2)]
    queued = [ex.submit(tw.sleep, 60) for _ in range(5)]
    for future in running:
        wait_running(future)
    start = time.monotonic()
    ex.shutdown(wait=True, cancel_futures=True)
    took = time.monotonic() - start
    assert all(f.cancelled() for f in running + queued)
    assert took < WAKE  # the goal is 50 ms
    # as_completed / wait see the dropped queued futures as done
    _done, not_done = cf.wait(queued, timeout=1)
    assert not not_done


def test_shutdown_cancel_futures_keeps_the_result_of_a_call_that_ran_to_its_end() -> None:
    started = threading.Event()

    def foreign() -> str:
        started.set()
        time.sleep(0.05)  # not a checkpoint
        return "done"

    ex = tw.Executor(1)
    future = ex.submit(foreign)
    started.wait()
    ex.shutdown(cancel_futures=True)
    # nobody was told "cancelled" for this one: its real result stands
    assert future.result() == "done"


def test_shutdown_without_wait_then_results() -> None:
    ex = tw.Executor(2)
    futures = [ex.submit(pow, 2, n) for n in range(10)]
    ex.shutdown(wait=False)
    assert [f.result(timeout=10) for f in futures] == [2**n for n in range(10)]
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(pow, 2, 2)


def test_as_completed_wait_and_wrap_future_see_a_cancelled_running_call() -> None:
    with tw.Executor(2) as ex:
        future = ex.submit(tw.sleep, 60)
        other = ex.submit(lambda: 1)
        wait_running(future)
        waiter = threading.Thread(target=lambda: cf.wait([future]))
        waiter.start()
        future.cancel()
        done = list(cf.as_completed([future, other], timeout=5))
        waiter.join(5)
        assert not waiter.is_alive()
    assert set(done) == {future, other}


# -- context, names, introspection ---------------------------------------------------------------

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def test_each_call_runs_in_a_copy_of_the_submitters_context() -> None:
    def read_and_write() -> str:
        value = request_id.get()
        request_id.set("changed in the call")
        return value

    with tw.Executor(1) as ex:
        token = request_id.set("r1")
        try:
            first = ex.submit(read_and_write)
            request_id.set("r2")
            second = ex.submit(read_and_write)
            assert first.result() == "r1"
            assert second.result() == "r2"
            assert request_id.get() == "r2"
        finally:
            request_id.reset(token)


def test_calls_show_in_threads_with_the_executors_name() -> None:
    gate = tw.Event()
    with tw.Executor(2, name="crawler") as ex:
        future = ex.submit(gate.wait)
        wait_running(future)
        infos = [info for info in tw.threads() if info.name.startswith("crawler_")]
        assert len(infos) == 1
        assert infos[0].name == "crawler_0"
        assert infos[0].state is tw.State.BLOCKED
        assert infos[0].task is not None
        assert infos[0].task.startswith("crawler:")
        assert "Event.wait" in (infos[0].blocked_on or "")
        gate.set()
    assert ex.name == "crawler"
    assert ex.max_workers == 2
    assert "crawler" in repr(ex)


def test_thread_name_prefix_wins_over_the_name() -> None:
    with tw.Executor(1, name="n", thread_name_prefix="pre") as ex:
        assert ex.submit(lambda: threading.current_thread().name).result() == "pre_0"


def test_default_max_workers_follows_the_stdlib() -> None:
    count = getattr(os, "process_cpu_count", os.cpu_count)() or 1
    assert tw.Executor().max_workers == min(32, count + 4)


def test_idle_threads_show_as_idle_and_do_not_count_as_leaks() -> None:
    with tw.Executor(1, name="idler") as ex:
        ex.submit(int).result()
    # The runner's thread is back in the cache: parked, shown so, not a leak.
    deadline = time.monotonic() + 5
    while not _threads.idle_threads() and time.monotonic() < deadline:
        time.sleep(0.001)
    idle = {t.ident for t in _threads.idle_threads()}
    infos = [info for info in tw.threads() if info.ident in idle]
    assert infos
    assert all(info.blocked_on == "idle in the thread cache" for info in infos)
    assert all(info.task is None for info in infos)


# -- map -----------------------------------------------------------------------------------------


def test_map_with_buffersize_pulls_the_input_lazily() -> None:
    source = Counted(iter(range(1000)))
    with tw.Executor(4) as ex:
        results = ex.map(lambda x: x * 2, source, buffersize=3)
        assert source.pulled == 3
        assert next(results) == 0
        assert source.pulled == 4  # one more submitted per result taken
        assert [next(results) for _ in range(5)] == [2, 4, 6, 8, 10]
        assert source.pulled <= 3 + 6
        results.close()  # type: ignore[attr-defined]
    assert source.pulled < 20


def test_map_over_an_infinite_input_with_buffersize() -> None:
    def naturals() -> Iterator[int]:
        n = 0
        while True:
            yield n
            n += 1

    with tw.Executor(2) as ex:
        out = []
        for value in ex.map(abs, naturals(), buffersize=4):
            out.append(value)
            if len(out) == 50:
                break
    assert out == list(range(50))


def test_map_with_several_iterables_and_chunksize() -> None:
    with tw.Executor(3) as ex:
        assert list(ex.map(pow, [2, 3, 4], [2, 2, 2], chunksize=2)) == [4, 9, 16]
        assert list(ex.map(pow, [2, 3, 4], [1, 2], buffersize=1)) == [2, 9]


def test_map_timeout_cancels_the_running_call() -> None:
    with tw.Executor(1) as ex:
        results = ex.map(tw.sleep, [60], timeout=0.05)
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            next(results)
        # leaving the with block must not wait 60 s: the call was cancelled
    assert time.monotonic() - start < 10


def test_map_error_is_raised_in_order() -> None:
    with tw.Executor(2) as ex:
        results = ex.map(lambda x: 1 // x, [1, 0, 1])
        assert next(results) == 1
        with pytest.raises(ZeroDivisionError):
            next(results)


def test_map_with_buffersize_after_shutdown_cannot_submit_more() -> None:
    with tw.Executor(1) as ex:
        results = ex.map(abs, range(10), buffersize=2)
        assert next(results) == 0
    # as in Python 3.14: the next result would need one more submit
    with pytest.raises(RuntimeError, match="after shutdown"):
        next(results)


def test_map_iterator_holds_the_executor_weakly() -> None:
    ex = tw.Executor(1)
    results = ex.map(abs, range(10), buffersize=2)
    assert next(results) == 0
    ex.shutdown()
    ref = weakref.ref(ex)
    del ex
    gc.collect()
    assert ref() is None  # the iterator did not keep it alive
    assert list(results) == [1, 2]  # what was submitted (two ahead), then it stops


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (0, ValueError, "max_workers must be greater than 0, got 0"),
        (-1, ValueError, "max_workers must be greater than 0, got -1"),
        ("4", TypeError, "max_workers must be an int >= 1 or None, got '4'"),
        (2.0, TypeError, "got 2.0"),
        (True, TypeError, "got True"),
    ],
)
def test_bad_max_workers(value: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        tw.Executor(value)  # type: ignore[arg-type]


def test_bad_constructor_arguments() -> None:
    with pytest.raises(TypeError, match="name must be a str or None, got 3"):
        tw.Executor(name=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="thread_name_prefix must be a str, got None"):
        tw.Executor(thread_name_prefix=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="initializer must be callable, got 5"):
        tw.Executor(initializer=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"initargs must be a tuple, got \[1\]"):
        tw.Executor(initargs=[1])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="grace"):
        tw.Executor(grace=-1)


def test_submit_after_shutdown_raises_runtime_error_like_the_stdlib() -> None:
    ex = tw.Executor(1)
    ex.shutdown()
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        ex.submit(int)
    with tw.Executor(1) as ex2:
        pass
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex2.submit(int)


def test_non_callable_fn() -> None:
    with tw.Executor(1) as ex:
        with pytest.raises(TypeError, match="fn must be callable, got 3"):
            ex.submit(3)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="fn must be callable, got None"):
            ex.map(None, [1])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"buffersize": 0}, ValueError, "buffersize must be >= 1, got 0"),
        ({"buffersize": -2}, ValueError, "buffersize must be >= 1, got -2"),
        ({"buffersize": "3"}, TypeError, "buffersize must be an int >= 1 or None, got '3'"),
        ({"chunksize": 0}, ValueError, "chunksize must be >= 1, got 0"),
        ({"chunksize": 1.5}, TypeError, "chunksize must be an int >= 1, got 1.5"),
        ({"timeout": -1}, ValueError, "timeout must be a non-negative number"),
    ],
)
def test_bad_map_arguments(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    source = Counted(iter(range(10)))
    with tw.Executor(1) as ex, pytest.raises(error, match=message):
        ex.map(abs, source, **kwargs)
    assert source.pulled == 0  # nothing submitted


# -- initializer ---------------------------------------------------------------------------------


def test_initializer_runs_once_per_thread() -> None:
    local = threading.local()
    calls: list[str] = []
    lock = threading.Lock()

    def init(tag: str) -> None:
        with lock:
            calls.append(tag)
        local.tag = tag

    with tw.Executor(1, initializer=init, initargs=("ready",)) as ex:
        assert [ex.submit(lambda: local.tag).result() for _ in range(5)] == ["ready"] * 5
    assert calls == ["ready"] * len(calls)
    assert 1 <= len(calls) <= 5  # once per thread that ran calls


def test_failing_initializer_breaks_the_executor(caplog: pytest.LogCaptureFixture) -> None:
    def init() -> None:
        raise ValueError("no database")

    ex = tw.Executor(1, initializer=init)
    with caplog.at_level(logging.CRITICAL, logger="concurrent.futures"):
        future = ex.submit(int)
        with pytest.raises(cf.BrokenExecutor):
            future.result(timeout=10)
    assert "Exception in initializer" in caplog.text
    with pytest.raises(cf.BrokenExecutor, match="initializer failed"):
        ex.submit(int)
    ex.shutdown()


# -- the thread cache ---------------------------------------------------------------------------


def test_sequential_calls_reuse_one_thread() -> None:
    with tw.Executor(4) as ex:
        idents = {ex.submit(threading.get_ident).result() for _ in range(20)}
    assert len(idents) == 1


def test_cache_reuses_newest_first_and_retires_idle_workers() -> None:
    cache = _threads.ThreadCache(idle_timeout=0.2)
    done = [threading.Event() for _ in range(3)]
    gate = threading.Event()
    threads: list[threading.Thread] = []

    def job() -> None:
        threads.append(threading.current_thread())
        gate.wait()

    for event in done:
        cache.start_thread_soon(job, lambda _, e=event: e.set(), name="cached")
    deadline = time.monotonic() + 5
    while len(threads) < 3 and time.monotonic() < deadline:
        time.sleep(0.001)
    gate.set()
    for event in done:
        event.wait()
    assert len(set(threads)) == 3
    deadline = time.monotonic() + 5
    while cache.idle_threads() != set(threads) and time.monotonic() < deadline:
        time.sleep(0.001)
    assert cache.idle_threads() == set(threads)
    # the last one to go idle is the first one reused
    newest = list(cache._idle)[-1].thread
    ran_on: list[threading.Thread] = []
    again = threading.Event()
    cache.start_thread_soon(
        lambda: ran_on.append(threading.current_thread()), lambda _: again.set()
    )
    again.wait()
    assert ran_on == [newest]
    for thread in threads:
        thread.join(5)
        assert not thread.is_alive()
    assert cache.idle_threads() == set()


def test_cache_never_queues_a_job_behind_a_running_one() -> None:
    # Jobs that can only finish together: each must get a thread of its own, though the
    # workers take queued jobs themselves (a worker that takes one wakes another first).
    cache = _threads.ThreadCache(idle_timeout=0.2)
    barrier = threading.Barrier(6, timeout=10)
    done = threading.Semaphore(0)
    for _ in range(3):  # some idle workers to start from
        cache.start_thread_soon(lambda: None, lambda _: done.release())
    for _ in range(3):
        assert done.acquire(timeout=10)
    for _ in range(6):
        cache.start_thread_soon(barrier.wait, lambda _: done.release())
    for _ in range(6):
        assert done.acquire(timeout=10)
    assert not barrier.broken


def test_cache_gives_the_next_job_to_the_worker_that_delivered() -> None:
    cache = _threads.ThreadCache(idle_timeout=1)
    seen: list[threading.Thread] = []
    delivered = threading.Semaphore(0)
    for _ in range(20):
        # queued as soon as the previous result is seen: that worker is on its way already
        cache.start_thread_soon(
            lambda: seen.append(threading.current_thread()), lambda _: delivered.release()
        )
        assert delivered.acquire(timeout=5)
    assert len(set(seen)) == 1
    cache.idle_timeout = 0.01
    cache.start_thread_soon(lambda: None)  # wakes it; it then retires quickly
    seen[0].join(5)
    assert not seen[0].is_alive()


def test_cache_drops_a_job_no_thread_can_take() -> None:
    cache = _threads.ThreadCache(idle_timeout=0.2)
    ran: list[int] = []
    original = threading.Thread.start

    def start(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    threading.Thread.start = start  # type: ignore[method-assign]
    try:
        with pytest.raises(RuntimeError, match="can't start new thread"):
            cache.start_thread_soon(lambda: ran.append(1))
    finally:
        threading.Thread.start = original  # type: ignore[method-assign]
    assert not cache._jobs
    assert cache._looking == 0
    done = threading.Event()
    cache.start_thread_soon(lambda: ran.append(2), lambda _: done.set())
    assert done.wait(5)
    assert ran == [2]


def test_a_worker_that_cannot_start_another_logs_it_instead_of_crashing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Before: the failed start of an extra worker (asked for by a worker that leaves jobs
    # queued) went to threading.excepthook, as if that worker had crashed; the
    # fault-injection campaign failed under pytest's unhandled-thread-exception check.
    cache = _threads.ThreadCache(idle_timeout=0.2)
    hooked: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", hooked.append)

    def start(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    with cache._lock:
        cache._looking += 1  # as a worker does before it provides another
    monkeypatch.setattr(threading.Thread, "start", start)
    with caplog.at_level(logging.WARNING, logger="threadwise"):
        cache._wake_another()
    assert hooked == []
    assert "could not start another worker thread" in caplog.text
    assert cache._looking == 0  # the count is taken back


@pytest.mark.parametrize("thread_started", [True, False])
def test_ctrl_c_inside_thread_start_is_raised_and_leaves_the_cache_working(
    thread_started: bool,
) -> None:
    # Ctrl-C can land in the standard library's Thread.start. Before: the interrupt was
    # swallowed when a worker had taken the job, and the count of workers on their way to
    # the queue went wrong, so later jobs were never run.
    cache = _threads.ThreadCache(idle_timeout=0.2)
    ran: list[int] = []
    original = threading.Thread.start

    def start(self: threading.Thread) -> None:
        if thread_started:
            original(self)
        raise KeyboardInterrupt

    threading.Thread.start = start  # type: ignore[method-assign]
    try:
        with pytest.raises(KeyboardInterrupt):
            cache.start_thread_soon(lambda: ran.append(1))
    finally:
        threading.Thread.start = original  # type: ignore[method-assign]
    done = threading.Semaphore(0)
    cache.start_thread_soon(lambda: ran.append(2), lambda _: done.release())
    assert done.acquire(timeout=5)
    deadline = time.monotonic() + 5
    while len(ran) < (2 if thread_started else 1) and time.monotonic() < deadline:
        time.sleep(0.001)
    assert sorted(ran) == ([1, 2] if thread_started else [2])
    assert not cache._jobs
    deadline = time.monotonic() + 5
    while cache._looking and time.monotonic() < deadline:
        time.sleep(0.001)
    assert cache._looking == 0


def test_cache_reports_a_failing_job_and_keeps_working() -> None:
    cache = _threads.ThreadCache(idle_timeout=0.05)
    seen: list[BaseException | None] = []
    threads: list[threading.Thread] = []
    reported = threading.Event()
    old_hook = threading.excepthook

    def hook(args: Any) -> None:
        seen.append(args.exc_value)
        threads.append(args.thread)
        if len(seen) == 2:
            reported.set()

    def boom() -> None:
        raise RuntimeError("job failed")

    def bad_deliver(_: object) -> None:
        raise KeyError("deliver failed")

    threading.excepthook = hook
    try:
        cache.start_thread_soon(boom, bad_deliver)
        assert reported.wait(5)
        threads[0].join(5)
        assert not threads[0].is_alive()
    finally:
        threading.excepthook = old_hook
    assert [type(e) for e in seen] == [RuntimeError, KeyError]


def test_set_idle_timeout_validates() -> None:
    with pytest.raises(ValueError, match="seconds must be a positive number, got 0"):
        _threads.set_idle_timeout(0)
    old = _threads.set_idle_timeout(1.5)
    assert _threads.set_idle_timeout(old) == 1.5


def test_leak_check_still_sees_a_thread_taken_from_the_cache() -> None:
    from threadwise.testing import baseline_threads, leaked_threads

    with tw.Executor(1) as ex:
        ex.submit(int).result()  # leaves an idle cached thread behind
    before = baseline_threads()
    gate = tw.Event()
    task = tw.spawn(gate.wait)
    try:
        leaked = leaked_threads(before, settle=0.05)
        assert leaked, "a running task must count as a leak even on a reused thread"
    finally:
        gate.set()
        task.join()


# -- Ctrl-C and interpreter exit (child processes) -----------------------------------------------

STARTUP = 30.0


def _run_and_interrupt(tmp_path: Path, script: str) -> tuple[int, str, str, float]:
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(script))
    proc = subprocess.Popen(
        [sys.executable, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        readable, _, _ = select.select([proc.stdout], [], [], STARTUP)
        line = proc.stdout.readline() if readable else ""
        if line != "ready\n":
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"the script did not get ready: {line!r}{out}\n{err}")
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=STARTUP)
        return proc.returncode, out, err, time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


BUSY = """
import threadwise as tw

def busy(n):
    while True:  # CPU work with checkpoints
        sum(range(1000))
        tw.checkpoint()

def blocked(n):
    tw.sleep(60)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT to a child process")
@pytest.mark.parametrize("where", ["result", "body", "exit", "interpreter exit"])
# A SIGINT that lands inside an atexit hook is printed as "Exception ignored" by Python;
# rare and timing-dependent (issue 14 is open for it): retried, a regression fails every run.
@pytest.mark.flaky(reruns=2)
def test_sigint_with_busy_executor_work_exits_within_a_second(tmp_path: Path, where: str) -> None:
    body = {
        "result": "futures[0].result()",
        "body": "tw.sleep(60)",
        "exit": "pass",
        "interpreter exit": "pass",
    }[where]
    if where == "interpreter exit":
        script = (
            BUSY
            + f"""
ex = tw.Executor(4)
futures = [ex.submit(busy, n) for n in range(2)] + [ex.submit(blocked, n) for n in range(6)]
print("ready", flush=True)
{body}
"""
        )
    else:
        script = (
            BUSY
            + f"""
with tw.Executor(4) as ex:
    futures = [ex.submit(busy, n) for n in range(2)] + [ex.submit(blocked, n) for n in range(6)]
    print("ready", flush=True)
    {body}
"""
        )
    returncode, _out, err, seconds = _run_and_interrupt(tmp_path, script)
    assert seconds < 1.0 + 1.0, (seconds, err)  # goal: within 1 s; the extra is machine load
    if where == "interpreter exit" and returncode == 0:
        # The program had ended (the usual case): Ctrl-C only cut the wait for its executor
        # short. If the signal came first, it is the case below.
        assert "KeyboardInterrupt" not in err, err
    else:
        assert "KeyboardInterrupt" in err, err
        assert returncode == -signal.SIGINT, (returncode, err)
    assert "abandoned" not in err  # every call reached a checkpoint


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT to a child process")
def test_sigint_abandons_a_stuck_call_by_name_after_the_grace(tmp_path: Path) -> None:
    script = """
import threading, time
import threadwise as tw

started = threading.Event()

def stuck_in_foreign_code():
    started.set()
    time.sleep(60)

with tw.Executor(2, grace=0.3) as ex:
    ex.submit(stuck_in_foreign_code)
    ex.submit(tw.sleep, 60)
    started.wait()
    print("ready", flush=True)
"""
    _returncode, _out, err, seconds = _run_and_interrupt(tmp_path, script)
    assert seconds < 0.3 + 1.5, (seconds, err)
    abandoned = [line for line in err.splitlines() if "abandoned" in line]
    assert len(abandoned) == 1, err
    assert "stuck_in_foreign_code" in abandoned[0]


@pytest.mark.skipif(sys.platform == "win32", reason="signals a thread (pthread_kill)")
def test_ctrl_c_taken_by_a_worker_thread_stops_the_shutdown_wait(tmp_path: Path) -> None:
    # A SIGINT sent to the process may land on any thread; Python then only flags it for the
    # main thread. Before: the main thread slept in shutdown's wait until the call ended (60 s).
    path = tmp_path / "script.py"
    path.write_text(
        textwrap.dedent(
            """
            import signal, threading, time
            import threadwise as tw

            def call():
                time.sleep(0.3)  # the main thread waits in shutdown by now
                signal.pthread_kill(threading.get_ident(), signal.SIGINT)
                try:
                    tw.sleep(60)
                except tw.Cancelled:
                    print("call cancelled", flush=True)
                    raise

            try:
                with tw.Executor(1) as ex:
                    future = ex.submit(call)
            except KeyboardInterrupt:
                print("interrupted", flush=True)
            print(future.cancelled(), flush=True)
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=STARTUP
    )
    assert proc.returncode == 0, proc
    assert proc.stdout.splitlines() == ["call cancelled", "interrupted", "True"], proc


@pytest.mark.skipif(sys.platform == "win32", reason="signals a thread (pthread_kill)")
@pytest.mark.parametrize("wait", ["result()", "exception()", "result(timeout=60)"])
def test_ctrl_c_taken_by_a_worker_thread_stops_a_future_wait(tmp_path: Path, wait: str) -> None:
    # Before: the main thread slept in the stdlib's untimed condition wait until the call ended.
    path = tmp_path / "script.py"
    path.write_text(
        textwrap.dedent(
            f"""
            import signal, threading, time
            import threadwise as tw

            def call():
                time.sleep(0.3)  # the main thread waits on the future by now
                signal.pthread_kill(threading.get_ident(), signal.SIGINT)
                tw.sleep(60)

            ex = tw.Executor(1)
            future = ex.submit(call)
            try:
                future.{wait}
            except KeyboardInterrupt:
                print("interrupted", flush=True)
            future.cancel()
            ex.shutdown()
            print(future.cancelled(), flush=True)
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=STARTUP
    )
    assert proc.returncode == 0, proc
    assert proc.stdout.splitlines() == ["interrupted", "True"], proc


def test_interpreter_exit_waits_for_submitted_work(tmp_path: Path) -> None:
    path = tmp_path / "script.py"
    path.write_text(
        textwrap.dedent(
            """
            import threadwise as tw
            ex = tw.Executor(1)
            for n in range(3):
                ex.submit(lambda n=n: (tw.sleep(0.05), print("done", n, flush=True)))
            """
        )
    )
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["done 0", "done 1", "done 2"]
    assert not proc.stderr


def test_idle_runners_parked_on_the_executor_show_as_idle() -> None:
    with tw.Executor(1, name="parker") as ex:
        thread = ex.submit(threading.current_thread).result()
        deadline = time.monotonic() + 5
        while thread not in _threads.idle_threads() and time.monotonic() < deadline:
            time.sleep(0.001)
        assert thread in _threads.idle_threads()
        info = next(i for i in tw.threads() if i.ident == thread.ident)
        assert info.blocked_on == "idle in executor 'parker'"
        assert info.task is None
        # the next call goes to the parked runner, not to a new thread
        assert ex.submit(threading.current_thread).result() is thread


def test_idle_runner_retires_after_the_idle_timeout() -> None:
    old = _threads.set_idle_timeout(0.05)
    try:
        ex = tw.Executor(1)
        thread = ex.submit(threading.current_thread).result()
        thread.join(5)  # parked 0.05 s in the executor, then the thread ends
        assert not thread.is_alive()
        ex.shutdown()
    finally:
        _threads.set_idle_timeout(old)


def test_fork_child_starts_with_an_empty_cache(tmp_path: Path) -> None:
    script = tmp_path / "fork.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, warnings
            import threadwise as tw
            from threadwise import _threads
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads alive
            with tw.Executor(1) as ex:
                ex.submit(int).result()
            assert _threads.cache.idle_threads()
            pid = os.fork()
            if pid == 0:
                ok = not _threads.cache.idle_threads()
                with tw.Executor(1) as ex:  # and it still works
                    ok = ok and ex.submit(pow, 2, 3).result() == 8
                os._exit(0 if ok else 1)
            _, status = os.waitpid(pid, 0)
            print("child", os.waitstatus_to_exitcode(status))
            """
        )
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "child 0"


BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_executor.py"


def test_bench_executor_quick_prints_every_figure(tmp_path: Path) -> None:
    """A smoke run: the script works and reports each comparison (no timing asserted)."""
    out_file = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", str(out_file)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for needle in [
        "submit + result",
        "control: a 2nd ThreadPoolExecutor(1)",
        "groups x 4 trivial tasks",
        "await tw.aio.run_sync(fn)",
        "future.cancel()",
        "shutdown(cancel_futures=True)",
        "goals met:",
        "load average at start:",
    ]:
        assert needle in proc.stdout
    import json

    data = json.loads(out_file.read_text())
    assert set(data["ratios"]) == {"round_trip_1", "round_trip", "batch", "groups", "aio"}
    assert all(ratio > 0 for ratio in data["ratios"].values())
    assert data["control_round_trip_1"] > 0


def test_job_is_joined_like_the_thread_of_its_function() -> None:
    gate = threading.Event()
    assigned = threading.Event()
    inside: list[threading.Thread] = []
    jobs: list[_threads.Job] = []

    def work() -> None:
        inside.append(threading.current_thread())
        assigned.wait()
        jobs[0].join()  # from inside its own job: returns at once instead of hanging
        gate.wait()

    job = _threads.start_job(work, name="job-under-test")
    jobs.append(job)
    assigned.set()
    job.join(timeout=0.01)
    assert job.is_alive()
    assert job.name == "job-under-test"
    assert job.daemon
    assert "running" in repr(job)
    assert inside
    assert inside[0].name == "job-under-test"
    assert job.ident == inside[0].ident
    assert job.native_id == inside[0].native_id
    gate.set()
    job.join()
    assert not job.is_alive()
    assert "done" in repr(job)
    # the OS thread lives on, idle in the cache and renamed so
    assert inside[0] in _threads.idle_threads()
    assert inside[0].name.startswith("threadwise-idle-")


def test_busy_threads_leaves_out_idle_cached_threads() -> None:
    from threadwise.testing import busy_threads

    before = len(busy_threads())
    with tw.Executor(2) as ex:
        list(ex.map(abs, range(10)))
    assert len(busy_threads()) == before


def test_a_thread_that_cannot_start_fails_the_submit_and_nothing_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_threads(*args: object, **kwargs: object) -> threading.Thread:
        raise RuntimeError("can't start new thread")

    ran: list[str] = []
    with tw.Executor(1) as ex:
        monkeypatch.setattr(_threads, "start_thread_soon", no_threads)
        with pytest.raises(RuntimeError, match="can't start new thread"):
            ex.submit(ran.append, "the failed submit")
        monkeypatch.undo()
        # the executor is still usable, its first thread still named _0
        assert ex.submit(lambda: threading.current_thread().name).result().endswith("_0")
    assert ran == []  # what failed to submit never runs


def test_thread_names_reuse_freed_numbers() -> None:
    old = _threads.set_idle_timeout(0.02)
    try:
        with tw.Executor(2, name="slots") as ex:
            gate = threading.Event()
            first = [ex.submit(gate.wait) for _ in range(2)]
            gate.set()
            for future in first:
                assert future.result() is True
            # both runners idle 0.02 s, then retire and free their numbers
            assert ex._wait_runners(5)
            name = ex.submit(lambda: threading.current_thread().name).result()
        assert name == "slots_0"
    finally:
        _threads.set_idle_timeout(old)


def test_a_worker_handed_a_job_while_delivering_runs_it_under_its_name() -> None:
    cache = _threads.ThreadCache(idle_timeout=1)
    delivering = threading.Event()
    second_handed = threading.Event()
    ran_on: list[threading.Thread] = []
    names: list[str] = []
    done = threading.Event()

    def slow_deliver(_: object) -> None:
        delivering.set()
        second_handed.wait(5)  # the worker is ready for more already: the next job comes

    cache.start_thread_soon(
        lambda: ran_on.append(threading.current_thread()), slow_deliver, name="first"
    )
    assert delivering.wait(5)
    cache.start_thread_soon(
        lambda: (
            ran_on.append(threading.current_thread()),
            names.append(threading.current_thread().name),
        ),
        lambda _: done.set(),
        name="second",
    )
    second_handed.set()
    assert done.wait(5)
    first = ran_on[0]
    assert ran_on == [first, first]
    assert names == ["second"]
    cache.idle_timeout = 0.01
    cache.start_thread_soon(lambda: None)
    first.join(5)


def test_main_thread_waits_return_what_the_call_ended_with() -> None:
    # The main thread waits in slices and returns the outcome it saw under the future's
    # lock: each kind of ending, reached while it waits (the calls wait until then).
    assert threading.current_thread() is threading.main_thread()
    go = threading.Event()

    def after_go(value: object = None, error: BaseException | None = None) -> object:
        go.wait(10)
        if error is not None:
            raise error
        return value

    with tw.Executor(4) as ex:
        value = ex.submit(after_go, [1, 2])
        none = ex.submit(after_go)
        failing = ex.submit(after_go, error=KeyError("k"))
        failing_too = ex.submit(after_go, error=ValueError("v"))
        threading.Timer(0.05, go.set).start()
        assert value.result() == [1, 2]
        assert none.result() is None
        assert none.exception() is None
        with pytest.raises(KeyError):
            failing.result()
        assert isinstance(failing_too.exception(), ValueError)
        slow = ex.submit(time.sleep, 0.5)
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            slow.result(timeout=0.05)
        with pytest.raises(TimeoutError):
            slow.exception(timeout=0.05)
        assert time.monotonic() - start < 0.4
        assert slow.result() is None
