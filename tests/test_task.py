"""Tests for ``spawn`` and ``Task``: results, errors, waiting, cancellation, states, context."""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import gc
import logging
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import threadwise as tw
from threadwise import _task as _task_module
from threadwise import _threads
from threadwise.testing import tiny_switch_interval

# Generous: only reached when something is broken.
WAIT = 10.0


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll ``predicate`` until it holds; for states no event can announce (e.g. BLOCKED)."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.001)


def state_of(task: tw.Task[Any]) -> tw.State:
    """Read the state through a call, so a type checker does not narrow it between reads."""
    return task.state


def wait_for_state(task: tw.Task[Any], state: tw.State) -> None:
    wait_until(lambda: task.state is state, f"{task!r} to be {state!r}")


def explode(message: str) -> None:
    raise ValueError(message)


def add(a: int, b: int, *, scale: int = 1) -> int:
    return (a + b) * scale


def frame_names(exc: BaseException) -> list[str]:
    return [frame.name for frame in traceback.extract_tb(exc.__traceback__)]


# -- results and exceptions ----------------------------------------------------------------------


def test_spawn_returns_the_function_result() -> None:
    task = tw.spawn(add, 2, 3, scale=10)
    assert isinstance(task, tw.Task)
    assert task.result(timeout=WAIT) == 50
    assert task.done()
    assert state_of(task) is tw.State.DONE
    assert task.exception() is None
    assert not task.cancelled()


def test_result_can_be_read_many_times() -> None:
    marker = object()
    task = tw.spawn(lambda: marker)
    assert task.result(timeout=WAIT) is marker
    assert task.result() is marker


def test_result_reraises_with_the_functions_frame() -> None:
    task = tw.spawn(explode, "boom")
    with pytest.raises(ValueError, match=r"^boom$") as excinfo:
        task.result(timeout=WAIT)
    names = frame_names(excinfo.value)
    assert "explode" in names, names
    # The innermost frame is the function that raised, not threadwise's machinery.
    assert traceback.extract_tb(excinfo.value.__traceback__)[-1].name == "explode"
    assert state_of(task) is tw.State.FAILED
    assert task.done()
    assert not task.cancelled()


def test_result_reraises_the_same_exception_object() -> None:
    error = KeyError("missing")

    def fail() -> None:
        raise error

    task = tw.spawn(fail)
    with pytest.raises(KeyError) as excinfo:
        task.result(timeout=WAIT)
    assert excinfo.value is error
    # A second call raises it again.
    with pytest.raises(KeyError) as again:
        task.result()
    assert again.value is error


def test_exception_returns_the_exception() -> None:
    error = RuntimeError("bad")

    def fail() -> None:
        raise error

    task = tw.spawn(fail)
    exc = task.exception(timeout=WAIT)
    assert exc is error
    assert "fail" in frame_names(exc)
    assert state_of(task) is tw.State.FAILED


def test_exception_is_none_on_success() -> None:
    task = tw.spawn(add, 1, 1)
    assert task.exception(timeout=WAIT) is None
    assert task.result() == 2


def test_base_exception_in_task_is_kept_not_propagated() -> None:
    def leave() -> None:
        raise SystemExit(3)

    task = tw.spawn(leave)
    with pytest.raises(SystemExit) as excinfo:
        task.result(timeout=WAIT)
    assert excinfo.value.code == 3
    assert state_of(task) is tw.State.FAILED


# -- waiting -------------------------------------------------------------------------------------


def test_join_timeout_returns_false_then_true() -> None:
    gate = tw.Event()
    task = tw.spawn(gate.wait)
    try:
        assert task.join(timeout=0.05) is False
        assert not task.done()
        assert task.join(0) is False
    finally:
        gate.set()
    assert task.join(timeout=WAIT) is True
    assert task.done()
    assert task.result() is True
    # Joining a finished task is immediate and still True.
    assert task.join(timeout=0) is True


def test_join_also_joins_the_thread() -> None:
    seen: list[threading.Thread] = []

    def work() -> None:
        seen.append(threading.current_thread())

    task = tw.spawn(work)
    assert task.join(timeout=WAIT)
    assert len(seen) == 1
    # the thread is past the task: ended, or parked idle in the thread cache
    assert not seen[0].is_alive() or seen[0] in _threads.idle_threads()


def test_result_timeout_raises_timeout_error_while_running() -> None:
    gate = tw.Event()

    def wait_then_return() -> str:
        gate.wait()
        return "finished"

    task = tw.spawn(wait_then_return)
    try:
        wait_for_state(task, tw.State.BLOCKED)
        with pytest.raises(TimeoutError) as excinfo:
            task.result(timeout=0.05)
        assert excinfo.type is TimeoutError  # the builtin, not a look-alike
        assert task.name in str(excinfo.value)
        with pytest.raises(TimeoutError):
            task.exception(timeout=0.01)
        assert not task.done()
        assert state_of(task) is tw.State.BLOCKED
    finally:
        gate.set()
    # The timeout did not disturb the task: it still finishes normally.
    assert task.result(timeout=WAIT) == "finished"
    assert state_of(task) is tw.State.DONE


# -- cancellation --------------------------------------------------------------------------------


def _assert_cancelled(task: tw.Task[Any]) -> None:
    assert task.join(timeout=WAIT)
    assert state_of(task) is tw.State.CANCELLED
    assert task.cancelled()
    assert task.done()
    with pytest.raises(tw.TaskCancelled, match=re.escape(task.name)) as excinfo:
        task.result()
    assert isinstance(excinfo.value, concurrent.futures.CancelledError)
    with pytest.raises(concurrent.futures.CancelledError):
        task.result()
    with pytest.raises(tw.TaskCancelled):
        task.exception()


def test_cancel_task_blocked_in_sleep() -> None:
    seen: list[BaseException] = []

    def nap() -> None:
        try:
            tw.sleep(60)
        except tw.Cancelled as exc:
            seen.append(exc)
            raise

    task = tw.spawn(nap)
    wait_for_state(task, tw.State.BLOCKED)
    assert task.blocked_on == "sleep(60)"
    start = time.monotonic()
    assert task.cancel("shutting down") is True
    _assert_cancelled(task)
    assert time.monotonic() - start < 5.0  # woken by the cancel, not by the 60 s sleep
    assert len(seen) == 1
    assert "shutting down" in str(seen[0])
    assert task.blocked_on is None


def test_cancel_task_blocked_in_event_wait() -> None:
    never = tw.Event(name="never")
    after_wait: list[str] = []

    def wait_forever() -> None:
        never.wait()
        after_wait.append("returned")  # must not run: the wait raises Cancelled

    task = tw.spawn(wait_forever)
    wait_for_state(task, tw.State.BLOCKED)
    assert task.blocked_on == "Event.wait on Event 'never'"
    assert task.cancel() is True
    _assert_cancelled(task)
    assert after_wait == []
    assert not never.is_set()


def test_cancel_finished_task_returns_false() -> None:
    task = tw.spawn(add, 1, 2)
    assert task.join(timeout=WAIT)
    assert task.cancel() is False
    assert not task.cancelled()
    assert state_of(task) is tw.State.DONE
    assert task.result() == 3


def test_cancel_failed_task_returns_false() -> None:
    task = tw.spawn(explode, "late")
    assert task.join(timeout=WAIT)
    assert task.cancel() is False
    assert state_of(task) is tw.State.FAILED
    with pytest.raises(ValueError, match="late"):
        task.result()


def test_cancel_twice_second_returns_false() -> None:
    task = tw.spawn(tw.sleep, 60)
    wait_for_state(task, tw.State.BLOCKED)
    assert task.cancel() is True
    assert task.join(timeout=WAIT)
    assert task.cancel() is False
    assert state_of(task) is tw.State.CANCELLED


def test_task_raising_cancelled_by_hand_is_a_failure() -> None:
    def raise_cancelled() -> None:
        raise tw.Cancelled("not from a scope")

    task = tw.spawn(raise_cancelled)
    with pytest.raises(tw.Cancelled, match="not from a scope"):
        task.result(timeout=WAIT)
    assert state_of(task) is tw.State.FAILED
    assert not task.cancelled()


# -- states --------------------------------------------------------------------------------------


def test_state_transitions_running_blocked_running_done() -> None:
    reached = threading.Event()
    proceed = threading.Event()  # a stdlib wait: the task stays RUNNING while in it
    gate = tw.Event(name="gate")
    woke = threading.Event()
    finish = threading.Event()

    def lifecycle() -> str:
        reached.set()
        proceed.wait(WAIT)
        gate.wait()  # a threadwise wait: the task is BLOCKED while in it
        woke.set()
        finish.wait(WAIT)
        return "end"

    task = tw.spawn(lifecycle)
    try:
        assert reached.wait(WAIT)
        assert state_of(task) is tw.State.RUNNING
        assert task.blocked_on is None
        proceed.set()

        wait_for_state(task, tw.State.BLOCKED)
        assert task.blocked_on == "Event.wait on Event 'gate'"
        gate.set()

        assert woke.wait(WAIT)
        assert state_of(task) is tw.State.RUNNING
        assert task.blocked_on is None
        assert not task.done()
    finally:
        proceed.set()
        gate.set()
        finish.set()
    assert task.result(timeout=WAIT) == "end"
    assert state_of(task) is tw.State.DONE
    assert task.done()


def test_state_failed() -> None:
    reached = threading.Event()
    go = threading.Event()

    def fail_later() -> None:
        reached.set()
        go.wait(WAIT)
        raise OSError("disk")

    task = tw.spawn(fail_later)
    try:
        assert reached.wait(WAIT)
        assert state_of(task) is tw.State.RUNNING
    finally:
        go.set()
    assert task.join(timeout=WAIT)
    assert state_of(task) is tw.State.FAILED
    assert isinstance(task.exception(), OSError)


def test_state_created_for_a_queued_group_task() -> None:
    gate = tw.Event()
    with tw.TaskGroup(max_workers=1) as group:
        first = group.spawn(gate.wait)
        second = group.spawn(add, 4, 5)
        try:
            wait_for_state(first, tw.State.BLOCKED)
            # One worker, and it is busy: the second task waits in the queue, not started.
            assert second.state is tw.State.CREATED
            assert second.ident is None
            assert second.native_id is None
            assert not second.done()
        finally:
            gate.set()
    assert first.state is tw.State.DONE
    assert second.state is tw.State.DONE
    assert second.result() == 9


def test_repr_names_task_and_state() -> None:
    task = tw.spawn(add, 0, 0)
    assert task.join(timeout=WAIT)
    text = repr(task)
    assert task.name in text
    assert "DONE" in text


# -- identity ------------------------------------------------------------------------------------


def test_name_ident_native_id() -> None:
    inside: dict[str, Any] = {}

    def work() -> None:
        inside["ident"] = threading.get_ident()
        inside["native_id"] = threading.get_native_id()
        inside["thread_name"] = threading.current_thread().name

    task = tw.spawn(work)
    assert task.join(timeout=WAIT)
    assert task.ident == inside["ident"]
    assert task.native_id == inside["native_id"]
    assert task.ident != threading.get_ident()
    assert task.name == inside["thread_name"]
    assert re.fullmatch(r".*work-\d+", task.name), task.name


def test_default_name_uses_function_name_and_is_unique() -> None:
    first = tw.spawn(add, 1, 1)
    second = tw.spawn(add, 1, 1)
    assert first.join(timeout=WAIT)
    assert second.join(timeout=WAIT)
    assert re.fullmatch(r"add-\d+", first.name), first.name
    assert re.fullmatch(r"add-\d+", second.name), second.name
    assert first.name != second.name


def test_spawned_thread_is_a_daemon_thread() -> None:
    daemon: list[bool] = []
    task = tw.spawn(lambda: daemon.append(threading.current_thread().daemon))
    assert task.join(timeout=WAIT)
    assert daemon == [True]


# -- context variables ---------------------------------------------------------------------------

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


def test_contextvars_flow_into_spawned_task_and_do_not_leak_back() -> None:
    token = request_id.set("req-42")
    try:

        def read_then_change() -> tuple[str, str]:
            before = request_id.get()
            request_id.set("changed-in-task")
            return before, request_id.get()

        task = tw.spawn(read_then_change)
        assert task.result(timeout=WAIT) == ("req-42", "changed-in-task")
        assert request_id.get() == "req-42"
    finally:
        request_id.reset(token)


def test_contextvars_are_a_snapshot_at_spawn() -> None:
    token = request_id.set("at-spawn")
    try:
        go = threading.Event()

        def read_later() -> str:
            go.wait(WAIT)
            return request_id.get()

        task = tw.spawn(read_later)
        request_id.set("after-spawn")
        go.set()
        assert task.result(timeout=WAIT) == "at-spawn"
    finally:
        request_id.reset(token)


def test_each_task_gets_its_own_context_copy() -> None:
    token = request_id.set("shared-start")
    try:
        barrier = threading.Barrier(2, timeout=WAIT)

        def set_own(value: str) -> str:
            request_id.set(value)
            barrier.wait()  # both have set their value before either reads it back
            return request_id.get()

        a = tw.spawn(set_own, "a")
        b = tw.spawn(set_own, "b")
        assert a.result(timeout=WAIT) == "a"
        assert b.result(timeout=WAIT) == "b"
        assert request_id.get() == "shared-start"
    finally:
        request_id.reset(token)


# -- unretrieved exceptions ----------------------------------------------------------------------


def _unretrieved_records(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "threadwise" and "never retrieved" in r.getMessage() and name in r.getMessage()
    ]


def _collect(ref: weakref.ref[Any]) -> None:
    for _ in range(3):
        gc.collect()
        if ref() is None:
            return
    pytest.fail("the task was not garbage-collected; the test cannot check its report")


def test_unretrieved_exception_reported_once_on_gc(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="threadwise")
    task = tw.spawn(explode, "nobody looked")
    assert task.join(timeout=WAIT)
    name = task.name
    ref = weakref.ref(task)
    del task
    _collect(ref)
    gc.collect()  # a second collection must not report it again
    records = _unretrieved_records(caplog, name)
    assert len(records) == 1, [r.getMessage() for r in caplog.records]
    record = records[0]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    exc = record.exc_info[1]
    assert isinstance(exc, ValueError)
    assert str(exc) == "nobody looked"
    assert "explode" in frame_names(exc)
    assert "explode" in caplog.text  # the formatted traceback names the function


def test_no_report_when_result_was_called(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="threadwise")
    task = tw.spawn(explode, "seen")
    with pytest.raises(ValueError, match="seen"):
        task.result(timeout=WAIT)
    name = task.name
    ref = weakref.ref(task)
    del task
    _collect(ref)
    assert _unretrieved_records(caplog, name) == []
    assert [r for r in caplog.records if r.name == "threadwise"] == []


def test_no_report_when_exception_was_called(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="threadwise")
    task = tw.spawn(explode, "inspected")
    assert isinstance(task.exception(timeout=WAIT), ValueError)
    name = task.name
    ref = weakref.ref(task)
    del task
    _collect(ref)
    assert _unretrieved_records(caplog, name) == []


def test_no_report_for_successful_task(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="threadwise")
    task = tw.spawn(add, 1, 2)
    assert task.join(timeout=WAIT)
    ref = weakref.ref(task)
    del task
    _collect(ref)
    assert [r for r in caplog.records if r.name == "threadwise"] == []


_AT_EXIT_SCRIPT = textwrap.dedent(
    """
    import threadwise as tw

    def fails_at_exit():
        raise LookupError("lost at exit")

    kept = tw.spawn(fails_at_exit)
    kept.join()
    print("NAME=" + kept.name, flush=True)
    """
)


def test_unretrieved_exception_reported_at_exit() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _AT_EXIT_SCRIPT],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    match = re.search(r"^NAME=(.+)$", proc.stdout, re.MULTILINE)
    assert match, proc.stdout
    name = match.group(1)
    err = proc.stderr
    assert name in err, err
    assert "never retrieved" in err, err
    assert err.count("never retrieved") == 1, err  # exactly once, not again at teardown
    # ``-c`` scripts have no source to quote: the frame line is the traceback's proof.
    raise_line = _AT_EXIT_SCRIPT.splitlines().index('    raise LookupError("lost at exit")') + 1
    assert f'File "<string>", line {raise_line}, in fails_at_exit' in err, err
    assert "LookupError: lost at exit" in err, err


def test_no_at_exit_report_when_result_was_retrieved() -> None:
    script = _AT_EXIT_SCRIPT.replace(
        "kept.join()", "try:\n    kept.result()\nexcept LookupError:\n    pass"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "NAME=" in proc.stdout
    assert "never retrieved" not in proc.stderr, proc.stderr
    assert "LookupError" not in proc.stderr, proc.stderr


# -- joins honour their timeout (a blocking ThreadLocal close hook) ------------------------------


def _task_with_blocking_close(release: threading.Event) -> tw.Task[str]:
    """A task whose thread, after the task returns, blocks closing a ThreadLocal instance."""
    local: tw.ThreadLocal[object] = tw.ThreadLocal(object, close=lambda _: release.wait(WAIT))

    def work() -> str:
        local.get()
        return "value"

    return tw.spawn(work)


@pytest.mark.parametrize("how", ["join", "result"])
def test_join_with_timeout_does_not_wait_for_a_blocking_close_hook(
    how: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="threadwise")
    release = threading.Event()
    task = _task_with_blocking_close(release)
    try:
        start = time.monotonic()
        if how == "join":
            assert task.join(timeout=0.3) is True
        else:
            assert task.result(timeout=0.3) == "value"
        elapsed = time.monotonic() - start
        assert elapsed < WAIT / 2, elapsed  # before: blocked until the hook returned
        assert "abandoned" in caplog.text
        assert task.name in caplog.text
    finally:
        release.set()
        task.join(WAIT)  # its thread is past the close hooks before the next test


def test_join_without_timeout_waits_for_close_hooks_at_most_the_grace(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_task_module, "EXIT_GRACE", 0.2)
    caplog.set_level(logging.WARNING, logger="threadwise")
    release = threading.Event()
    task = _task_with_blocking_close(release)
    try:
        start = time.monotonic()
        assert task.join() is True
        assert time.monotonic() - start < WAIT / 2
        assert "abandoned" in caplog.text
    finally:
        release.set()
        task.join(WAIT)  # its thread is past the close hooks before the next test


# -- a thread that cannot start --------------------------------------------------------------------


@contextlib.contextmanager
def threads_cannot_start() -> Iterator[None]:
    def start(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    def start_soon(*args: object, **kwargs: object) -> threading.Thread:
        raise RuntimeError("can't start new thread")

    original = threading.Thread.start
    threading.Thread.start = start  # type: ignore[method-assign]
    # and no idle thread of the thread cache can take the job either
    cached = _threads.cache.start_thread_soon
    _threads.cache.start_thread_soon = start_soon  # type: ignore[method-assign, assignment]
    try:
        yield
    finally:
        threading.Thread.start = original  # type: ignore[method-assign]
        _threads.cache.start_thread_soon = cached  # type: ignore[method-assign]


def test_spawn_that_cannot_start_a_thread_raises_and_forgets_the_task() -> None:
    ran: list[bool] = []
    with threads_cannot_start(), pytest.raises(RuntimeError, match="can't start new thread"):
        tw.spawn(ran.append, True)
    with _task_module._live_lock:
        assert not _task_module._live_tasks  # before: the exit would wait for it forever
    assert ran == []


def test_interpreter_exit_after_a_failed_spawn_does_not_hang() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import threading
                import threadwise as tw
                def refuse(self):
                    raise RuntimeError("can't start new thread")
                threading.Thread.start = refuse
                try:
                    tw.spawn(print, "never")
                except RuntimeError as exc:
                    print("refused:", exc)
                """
            ),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "refused: can't start new thread\n"


# -- hostile arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["1", b"1", [1]])
def test_join_and_result_reject_a_non_number_timeout(bad: object) -> None:
    task = tw.spawn(add, 1, 1)
    for call in (task.join, task.result, task.exception):
        with pytest.raises(TypeError, match="timeout") as excinfo:
            call(bad)  # type: ignore[operator]
        assert repr(bad) in str(excinfo.value)
    assert task.result(timeout=WAIT) == 2


def test_huge_int_timeout_means_forever_not_overflow() -> None:
    task = tw.spawn(add, 2, 3)
    assert task.join(timeout=10**400) is True
    assert task.result(timeout=10**400) == 5
    assert task.exception(timeout=10**400) is None


def test_cancel_rejects_a_non_str_reason() -> None:
    gate = tw.Event()
    task = tw.spawn(gate.wait)
    try:
        with pytest.raises(TypeError, match="reason must be a str or None, got 5"):
            task.cancel(reason=5)  # type: ignore[arg-type]
        assert not task.done()
    finally:
        gate.set()
        task.result(timeout=WAIT)


def test_del_of_a_half_initialised_task_is_silent() -> None:
    # Ctrl-C can land inside Task.__init__, leaving slots unset; __del__ must cope.
    unraisable: list[Any] = []
    previous = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        half = tw.Task.__new__(tw.Task)
        del half
        gc.collect()
    finally:
        sys.unraisablehook = previous
    assert unraisable == []


# -- a task waiting for itself ---------------------------------------------------------------------


@pytest.mark.parametrize("how", ["join", "result", "exception"])
def test_task_waiting_for_itself_raises(how: str) -> None:
    holder: list[tw.Task[str]] = []
    ready = threading.Event()

    def wait_for_me() -> str:
        ready.wait(WAIT)
        try:
            getattr(holder[0], how)(timeout=WAIT)
        except RuntimeError as exc:
            return str(exc)
        return "no error"

    task = tw.spawn(wait_for_me)
    holder.append(task)
    ready.set()
    assert "cannot wait for itself" in task.result(timeout=3 * WAIT)


# -- fork ----------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is POSIX only")
def test_forked_child_does_not_wait_for_the_parents_tasks() -> None:
    script = textwrap.dedent(
        """
        import os, sys, time, warnings
        import threadwise as tw
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        gate = tw.Event()
        task = tw.spawn(gate.wait)
        pid = os.fork()
        if pid == 0:
            sys.exit(0)  # a normal exit: runs the exit-time wait for live tasks
        end = time.monotonic() + 10
        while time.monotonic() < end:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                print("child exited", os.waitstatus_to_exitcode(status))
                break
            time.sleep(0.02)
        else:
            print("child hung")
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        gate.set()
        task.result()
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "child exited 0\n", proc.stderr


# -- free-threading readiness: stress at the smallest switch interval -----------------------------


def test_done_implies_join_zero_true_under_races() -> None:
    # The outcome is published at once: a task seen done() is seen finished by join(0) and
    # has its result (before: state was set before the finished flag).
    with tiny_switch_interval():
        for _ in range(2000):
            task = tw.spawn(add, 1, 2)
            while not task.done():
                pass
            assert task.join(timeout=0) is True
            assert task.result(timeout=0) == 3


def test_failed_task_registry_is_safe_to_snapshot_while_tasks_fail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.CRITICAL, logger="threadwise")
    stop = threading.Event()

    def fail_many() -> None:
        while not stop.is_set():
            task = tw.spawn(explode, "many")
            task.exception(timeout=WAIT)  # registered as failed first, then retrieved

    with tiny_switch_interval():
        failing = [tw.spawn(fail_many) for _ in range(3)]
        try:
            end = time.monotonic() + 1.5
            while time.monotonic() < end:
                _task_module._report_failures_at_exit()  # iterates the registry
        finally:
            stop.set()
            for task in failing:
                task.result(timeout=WAIT)


def test_default_names_are_unique_across_threads() -> None:
    # Guarded by a lock (itertools.count is only atomic thanks to the GIL); not provocable
    # with the GIL, so this checks the result rather than the race.
    names: list[str] = []
    lock = threading.Lock()

    def make() -> None:
        for _ in range(200):
            name = _task_module._new_name(add)
            with lock:
                names.append(name)

    with tiny_switch_interval():
        makers = [tw.spawn(make) for _ in range(4)]
        for maker in makers:
            maker.result(timeout=WAIT)
    assert len(set(names)) == len(names) == 800


def test_after_fork_reset_leaves_a_working_kernel() -> None:
    # What a forked child runs first (tested for real in a subprocess above); here in-process,
    # with nothing running, to check the reset itself.
    from threadwise import _cancel, _state

    failed = tw.spawn(explode, "before the fork")
    failed.join(timeout=WAIT)
    states = _state.all_states()
    _task_module._after_fork_in_child()
    assert _task_module._failed_tasks.snapshot() == []
    with _task_module._live_lock:
        assert not _task_module._live_tasks
    assert set(_state.all_states()) <= {threading.get_ident()}
    # Not a real child: the idle cached threads live on and must stay visible to tw.threads()
    # for the tests that come next.
    with _state._registry_lock:
        _state._registry.update(states)
    assert not _cancel._tree_lock.locked()
    assert isinstance(failed.exception(), ValueError)
    assert tw.spawn(add, 20, 22).result(timeout=WAIT) == 42
