"""Introspection: tw.threads(), tw.dump(), tw.dump_on_signal() and the stall watchdog."""

from __future__ import annotations

import io
import logging
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import threadwise as tw
from threadwise._inspect import format_table

PROMPT = 5.0
ROOT = Path(__file__).resolve().parent.parent


def wait_until(predicate: Callable[[], bool], timeout: float = PROMPT) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"condition not reached within {timeout} s")
        time.sleep(0.001)


def info_of(ident: int | None) -> tw.ThreadInfo:
    found = [info for info in tw.threads() if info.ident == ident]
    assert len(found) == 1, f"thread {ident} not listed exactly once: {tw.threads()}"
    return found[0]


class Holder:
    """A plain threading.Thread with a chosen name that holds a lock until told to let go."""

    def __init__(self, lock: tw.Lock, name: str) -> None:
        self.lock = lock
        self._has_it = threading.Event()
        self._let_go = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name)

    def _run(self) -> None:
        with self.lock:
            self._has_it.set()
            self._let_go.wait()

    def start(self) -> Holder:
        self.thread.start()
        assert self._has_it.wait(PROMPT)
        return self

    def let_go(self) -> None:
        self._let_go.set()
        self.thread.join()


# -- one blocked task per primitive ------------------------------------------------------------
# Each case starts the blocking call in a function with a distinctive name, so the thread's
# stack can be checked for it, and returns what undoes the set-up.


@dataclass
class Case:
    blocked_fn: Callable[[], object]
    expected: list[str]  # substrings of ThreadInfo.blocked_on
    undo: Callable[[], None]


def _nothing() -> None:
    pass


def case_lock() -> Case:
    lock = tw.Lock(name="db")
    holder = Holder(lock, "db-owner").start()

    def blocked_in_lock_acquire() -> None:
        with lock:
            pass

    return Case(
        blocked_in_lock_acquire, ["Lock.acquire", "Lock 'db'", "held by db-owner"], holder.let_go
    )


def case_rlock() -> Case:
    lock = tw.RLock(name="cache")
    holder = Holder(lock, "cache-owner").start()

    def blocked_in_rlock_acquire() -> None:
        with lock:
            pass

    return Case(
        blocked_in_rlock_acquire,
        ["RLock.acquire", "RLock 'cache'", "held by cache-owner"],
        holder.let_go,
    )


def case_condition() -> Case:
    cond = tw.Condition(name="ready")

    def blocked_in_condition_wait() -> None:
        with cond:
            cond.wait()

    return Case(blocked_in_condition_wait, ["Condition.wait", "Condition 'ready'"], _nothing)


def case_semaphore() -> Case:
    sem = tw.Semaphore(0, name="slots")

    def blocked_in_semaphore_acquire() -> None:
        sem.acquire()

    return Case(blocked_in_semaphore_acquire, ["Semaphore.acquire", "Semaphore 'slots'"], _nothing)


def case_event() -> Case:
    event = tw.Event(name="go")

    def blocked_in_event_wait() -> None:
        event.wait()

    return Case(blocked_in_event_wait, ["Event.wait", "Event 'go'"], _nothing)


def case_queue_get() -> Case:
    q: tw.Queue[int] = tw.Queue(name="jobs")

    def blocked_in_queue_get() -> None:
        q.get()

    return Case(blocked_in_queue_get, ["Queue.get", "'jobs'"], _nothing)


def case_queue_put() -> Case:
    q: tw.Queue[int] = tw.Queue(maxsize=1, name="results")
    q.put(1)

    def blocked_in_queue_put() -> None:
        q.put(2)

    return Case(blocked_in_queue_put, ["Queue.put", "'results'"], _nothing)


def case_sleep() -> Case:
    def blocked_in_sleep() -> None:
        tw.sleep(60)

    return Case(blocked_in_sleep, ["sleep(60)"], _nothing)


CASES = {
    "Lock": case_lock,
    "RLock": case_rlock,
    "Condition": case_condition,
    "Semaphore": case_semaphore,
    "Event": case_event,
    "Queue.get": case_queue_get,
    "Queue.put": case_queue_put,
    "sleep": case_sleep,
}


@pytest.fixture
def blocked() -> Iterator[Callable[[Case], tw.Task[Any]]]:
    """Start a case's blocking function as a task; cancel and undo everything afterwards."""
    started: list[tuple[tw.Task[Any], Case]] = []

    def start(case: Case) -> tw.Task[Any]:
        task = tw.spawn(case.blocked_fn)
        started.append((task, case))
        wait_until(lambda: task.state is tw.State.BLOCKED)
        return task

    yield start
    for task, case in started:
        task.cancel()
        task.join(PROMPT)
        case.undo()


@pytest.mark.parametrize("kind", list(CASES))
def test_a_blocked_task_names_the_primitive_it_waits_on(
    kind: str, blocked: Callable[[Case], tw.Task[Any]]
) -> None:
    case = CASES[kind]()
    task = blocked(case)
    time.sleep(0.05)  # so that the time in state is clearly above zero

    info = info_of(task.ident)
    assert info.state is tw.State.BLOCKED
    assert info.blocked_on is not None
    for part in case.expected:
        assert part in info.blocked_on, f"{part!r} not in {info.blocked_on!r}"
    assert info.task == task.name
    assert info.name == task.name  # spawn names the thread after the task
    assert info.alive
    assert info.daemon
    assert info.ident == task.ident
    assert info.native_id == task.native_id
    assert info.running_for >= 0.04
    # The stack is the thread's own, outermost first, down to the call it is blocked in.
    stack = info.format_stack()
    assert f"in {case.blocked_fn.__name__}" in stack
    assert info.stack[0].lstrip().startswith("File ")
    assert stack.index("in _bootstrap") < stack.index(f"in {case.blocked_fn.__name__}")


def test_the_lock_holder_is_named_as_it_changes(
    blocked: Callable[[Case], tw.Task[Any]],
) -> None:
    lock = tw.Lock(name="config")
    first = Holder(lock, "first-owner").start()

    def wait_for_config() -> None:
        with lock:
            pass

    task = blocked(Case(wait_for_config, [], _nothing))
    assert info_of(task.ident).blocked_on == "Lock.acquire on Lock 'config' held by first-owner"
    first.let_go()
    task.join(PROMPT)
    assert task.state is tw.State.DONE


def test_a_task_in_a_group_shows_its_group(blocked: Callable[[Case], tw.Task[Any]]) -> None:
    event = tw.Event(name="never")
    with tw.TaskGroup(name="crawlers") as group:
        task = group.spawn(event.wait)
        wait_until(lambda: task.state is tw.State.BLOCKED)
        info = info_of(task.ident)
        assert info.group == "crawlers"
        assert info.task == task.name
        assert info.blocked_on == "Event.wait on Event 'never'"
        event.set()
    assert task.state is tw.State.DONE


def test_foreign_threads_are_listed() -> None:
    release = threading.Event()
    plain = threading.Thread(target=release.wait, name="foreign-plain")
    daemon = threading.Thread(target=release.wait, name="foreign-daemon", daemon=True)
    plain.start()
    daemon.start()
    try:
        infos = {info.name: info for info in tw.threads()}
        assert set(infos) == {t.name for t in threading.enumerate()}
        assert infos["foreign-plain"].daemon is False
        assert infos["foreign-daemon"].daemon is True
        for name, thread in (("foreign-plain", plain), ("foreign-daemon", daemon)):
            info = infos[name]
            assert info.alive is True
            assert info.ident == thread.ident
            assert info.native_id == thread.native_id
            assert info.task is None
            assert info.group is None
            # Blocked in a stdlib wait, which threadwise cannot see: shown as running.
            assert info.state is tw.State.RUNNING
            assert info.blocked_on is None
            assert "in wait" in info.format_stack()
        main = infos[threading.main_thread().name]
        assert main.ident == threading.main_thread().ident
        assert "in test_foreign_threads_are_listed" in main.format_stack()
    finally:
        release.set()
        plain.join()
        daemon.join()
    names = {info.name for info in tw.threads()}
    assert "foreign-plain" not in names
    assert "foreign-daemon" not in names


def test_a_foreign_thread_blocked_in_a_threadwise_primitive_shows_as_blocked() -> None:
    q: tw.Queue[int] = tw.Queue(name="inbox")
    thread = threading.Thread(target=q.get, name="foreign-consumer")
    thread.start()
    try:
        wait_until(lambda: info_of(thread.ident).state is tw.State.BLOCKED)
        info = info_of(thread.ident)
        assert info.blocked_on == "Queue.get on 'inbox'"
        assert info.task is None
    finally:
        q.put(1)
        thread.join()


def test_dump_lists_every_thread_with_its_stack(
    blocked: Callable[[Case], tw.Task[Any]],
) -> None:
    lock_case = case_lock()
    event_case = case_event()
    lock_task = blocked(lock_case)
    event_task = blocked(event_case)

    out = io.StringIO()
    text = tw.dump(out)
    assert out.getvalue() == text + "\n"

    names = [t.name for t in threading.enumerate()]
    assert text.startswith(f"threadwise dump: {len(names)} threads")
    for name in names:
        assert name in text
        assert f"--- {name} (ident " in text  # a stack section per thread
    # Table rows: a blocked task's row shows its state and what it waits on.
    rows = text.split("\n\n")[0].splitlines()
    # (the table cuts long names to its column width; the sections below carry them whole)
    lock_row = next(r for r in rows if r.startswith(lock_task.name[:28]))
    assert "BLOCKED" in lock_row
    assert "held by db-owner" in lock_row
    # Stack sections: the function each thread is blocked in, and the dumping test itself.
    sections = text.split("\n--- ")
    lock_section = next(s for s in sections if s.startswith(f"{lock_task.name} "))
    assert "Lock.acquire on Lock 'db' held by db-owner" in lock_section.splitlines()[0]
    assert "in blocked_in_lock_acquire" in lock_section
    event_section = next(s for s in sections if s.startswith(f"{event_task.name} "))
    assert "in blocked_in_event_wait" in event_section
    holder_section = next(s for s in sections if s.startswith("db-owner "))
    assert "in _run" in holder_section
    assert "in test_dump_lists_every_thread_with_its_stack" in text


def test_dump_writes_to_stderr_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    text = tw.dump()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == text + "\n"
    assert "MainThread" in captured.err


def test_format_table_has_a_row_per_thread() -> None:
    infos = tw.threads()
    lines = format_table(infos).splitlines()
    assert lines[0].split() == [
        "thread",
        "state",
        "for",
        "s",
        "task",
        "/",
        "group",
        "blocked",
        "on",
    ]
    assert len(lines) == 2 + len(infos)


def test_time_in_state_is_never_negative() -> None:
    # Threads that keep entering and leaving waits while snapshots are taken: a thread that
    # changes state during the snapshot must not show a negative time in state.
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            tw.sleep(0)

    tasks = [tw.spawn(churn) for _ in range(4)]
    negative: list[tuple[str, float]] = []
    try:
        for _ in range(1000):
            negative += [(i.name, i.running_for) for i in tw.threads() if i.running_for < 0]
    finally:
        stop.set()
        for task in tasks:
            task.result(timeout=PROMPT)
    assert negative == [], f"{len(negative)} negative times in state, e.g. {negative[:3]}"


# -- dump on a signal --------------------------------------------------------------------------

SIGNAL_SCRIPT = textwrap.dedent(
    """
    import signal, sys
    import threadwise as tw

    tw.dump_on_signal(signal.SIGUSR1)
    gate = tw.Event(name="gate")

    def parked_worker():
        gate.wait()
        return "worker done"

    worker = tw.spawn(parked_worker)
    while worker.state is not tw.State.BLOCKED:
        tw.sleep(0.001)
    print("ready", flush=True)
    line = sys.stdin.readline()  # the signal arrives while the main thread waits here
    gate.set()
    print(f"continued after {line.strip()!r}: {worker.result(timeout=5)}", flush=True)
    """
)


def _read_until(fd: int, marker: bytes, timeout: float = 20.0) -> bytes:
    data = b""
    end = time.monotonic() + timeout
    while marker not in data:
        left = end - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{marker!r} not seen within {timeout} s; got {data!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"stream closed before {marker!r}; got {data!r}")
            data += chunk
    return data


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs SIGUSR1")
def test_dump_on_signal_in_a_running_program(tmp_path: Path) -> None:
    script = tmp_path / "sigdump.py"
    script.write_text(SIGNAL_SCRIPT, encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    assert proc.stderr is not None
    try:
        _read_until(proc.stdout.fileno(), b"ready\n")
        proc.send_signal(signal.SIGUSR1)
        # The worker's section comes after the main thread's: once it is there, the dump is.
        err = _read_until(proc.stderr.fileno(), b"gate.wait()")
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        out, rest = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err += rest
    text = err.decode()
    assert proc.returncode == 0, text
    assert out.decode() == "continued after 'go': worker done\n"
    assert text.startswith("threadwise dump: 2 threads")
    assert "--- MainThread (ident " in text
    main_section = text.split("--- MainThread (ident ")[1].split("\n--- ")[0]
    assert "sigdump.py" in main_section
    assert "in <module>" in main_section
    assert "--- parked_worker-" in text
    assert "BLOCKED, Event.wait on Event 'gate')" in text
    assert "in parked_worker" in text


def test_dump_on_signal_returns_the_previous_handler() -> None:
    sig = getattr(signal, "SIGUSR2", None)
    if sig is None:
        pytest.skip("needs SIGUSR2")
    original = signal.getsignal(sig)
    try:
        previous = tw.dump_on_signal(sig, io.StringIO())
        assert previous is original
        installed = signal.getsignal(sig)
        assert callable(installed)
        assert installed is not original
    finally:
        signal.signal(sig, original)


def test_dump_on_signal_writes_to_the_given_file() -> None:
    sig = getattr(signal, "SIGUSR2", None)
    if sig is None:
        pytest.skip("needs SIGUSR2")
    out = io.StringIO()
    original = tw.dump_on_signal(sig, out)
    try:
        signal.raise_signal(sig)
        time.sleep(0.01)  # let the interpreter run the handler
        text = out.getvalue()
        assert text.startswith("threadwise dump: ")
        assert "in test_dump_on_signal_writes_to_the_given_file" in text
    finally:
        signal.signal(sig, original)


# -- watchdog ----------------------------------------------------------------------------------


def test_watchdog_reports_a_stall_once_per_episode() -> None:
    first = tw.Event(name="first")
    second = tw.Event(name="second")
    between = tw.Event(name="between")
    reports: list[tw.ThreadInfo] = []

    def stalls_twice() -> None:
        first.wait()
        between.set()
        second.wait()

    with tw.watchdog(stall_after=0.2, on_stall=reports.append) as dog:
        task = tw.spawn(stalls_twice)
        wait_until(lambda: len(reports) == 1)
        # Several check intervals (0.05 s) later, still one report for the same stall.
        time.sleep(0.4)
        assert len(reports) == 1
        report = reports[0]
        assert report.task == task.name
        assert report.state is tw.State.BLOCKED
        assert report.blocked_on == "Event.wait on Event 'first'"
        assert report.running_for >= 0.2
        assert "in stalls_twice" in report.format_stack()

        first.set()  # ends the episode; the task then stalls again on the second event
        assert between.wait(PROMPT)
        wait_until(lambda: len(reports) == 2)
        time.sleep(0.4)
        assert len(reports) == 2
        assert reports[1].blocked_on == "Event.wait on Event 'second'"
        second.set()
        task.result(timeout=PROMPT)
    assert dog.reports == reports


def test_watchdog_ignores_short_waits_and_non_task_threads() -> None:
    reports: list[tw.ThreadInfo] = []
    release = threading.Event()
    foreign = threading.Thread(target=release.wait, name="foreign-idle")
    foreign.start()
    try:
        with tw.watchdog(stall_after=0.2, on_stall=reports.append):
            for _ in range(10):
                tw.spawn(tw.sleep, 0.03).result(timeout=PROMPT)
            time.sleep(0.3)  # the foreign thread is idle well past stall_after
        assert reports == []
    finally:
        release.set()
        foreign.join()


def test_watchdog_logs_by_default(caplog: pytest.LogCaptureFixture) -> None:
    gate = tw.Event(name="gate")

    def waits_for_the_gate() -> None:
        gate.wait()

    caplog.set_level(logging.WARNING, logger="threadwise")
    with tw.watchdog(stall_after=0.1) as dog:
        task = tw.spawn(waits_for_the_gate)
        wait_until(lambda: len(dog.reports) == 1)
        gate.set()
        task.result(timeout=PROMPT)
    records = [r for r in caplog.records if r.name == "threadwise"]
    assert len(records) == 1
    message = records[0].getMessage()
    assert task.name in message
    assert "BLOCKED" in message
    assert "Event.wait on Event 'gate'" in message
    assert "in waits_for_the_gate" in message  # the stack is in the report


def test_a_failing_on_stall_callback_is_logged_and_the_watchdog_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = tw.Event()
    calls: list[str | None] = []

    def broken(info: tw.ThreadInfo) -> None:
        calls.append(info.task)
        raise RuntimeError("callback bug")

    caplog.set_level(logging.ERROR, logger="threadwise")
    with tw.watchdog(stall_after=0.1, on_stall=broken):
        task = tw.spawn(gate.wait)
        wait_until(lambda: len(calls) >= 1)
        before = len(calls)
        # A later stall is still reported after the callback raised. (At least one more: on a
        # loaded machine the sleeping task can also stall while RUNNING, before it blocks, a
        # second episode; waiting for exactly one more then missed it going from 1 to 3.)
        assert tw.spawn(tw.sleep, 0.3).join(PROMPT)
        wait_until(lambda: len(calls) > before)
        gate.set()
        task.result(timeout=PROMPT)
    assert any("on_stall callback failed" in r.getMessage() for r in caplog.records)


def test_watchdog_stop_ends_its_thread() -> None:
    dog = tw.watchdog(stall_after=1.0)
    assert any(t.name == "threadwise-watchdog" for t in threading.enumerate())
    dog.stop()
    dog.stop()  # idempotent
    assert not any(t.name == "threadwise-watchdog" for t in threading.enumerate())


@pytest.mark.parametrize("bad", [0, 0.0, -1, float("nan")])
def test_watchdog_rejects_a_non_positive_threshold(bad: float) -> None:
    with pytest.raises(ValueError, match="stall_after"):
        tw.watchdog(stall_after=bad)


@pytest.mark.parametrize("bad", ["1", None, True])
def test_watchdog_rejects_a_threshold_that_is_not_a_number(bad: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="stall_after"):
        tw.watchdog(stall_after=bad)


def test_watchdog_rejects_a_callback_that_is_not_callable() -> None:
    with pytest.raises(TypeError, match="on_stall"):
        tw.watchdog(stall_after=1.0, on_stall="print")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["x", 3, object()])
def test_dump_to_something_that_is_not_a_stream_is_a_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match=r"file must be a writable text stream .* got"):
        tw.dump(file=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="file"):
        tw.dump_on_signal(file=bad)  # type: ignore[arg-type]


def test_threads_leaves_the_garbage_collector_as_it_found_it() -> None:
    import gc

    assert gc.isenabled()
    tw.threads()
    assert gc.isenabled()
    gc.disable()
    try:
        tw.threads()
        assert not gc.isenabled()  # not switched on behind the caller's back
    finally:
        gc.enable()
