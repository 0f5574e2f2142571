"""Races in ThreadLocal, the watchdog and Service, provoked at ``setswitchinterval(1e-6)``.

Each test hammers one shared structure from several threads for a bounded time and checks an
invariant that a missing lock breaks (issue 14: no code may rely on the GIL for correctness).
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from collections.abc import Callable

import pytest

import threadwise as tw
from threadwise._local import close_thread_locals
from threadwise.testing import tiny_switch_interval

SECONDS = 1.0  # per test; the races below showed up within a fraction of that before the fixes


def run_threads(n: int, target: Callable[[], None]) -> None:
    threads = [threading.Thread(target=target) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class Conn:
    def __init__(self) -> None:
        self.closing_mark: int | None = None


def test_get_never_returns_an_instance_whose_close_began_before_the_call() -> None:
    lock = threading.Lock()
    marks = [0]  # how many closes have begun

    def close(conn: Conn) -> None:
        with lock:
            marks[0] += 1
            conn.closing_mark = marks[0]
        time.sleep(0)  # a close that yields, as real ones (network, files) do

    local = tw.ThreadLocal(Conn, close)
    stop = time.monotonic() + SECONDS
    stale: list[int] = []

    def user() -> None:
        while time.monotonic() < stop:
            with lock:
                before = marks[0]
            conn = local.get()
            mark = conn.closing_mark
            if mark is not None and mark <= before:
                stale.append(mark)  # its close began before get() was called

    def closer() -> None:
        while time.monotonic() < stop:
            local.close_all()

    with tiny_switch_interval():
        threads = [threading.Thread(target=user) for _ in range(3)]
        threads.append(threading.Thread(target=closer))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    local.close_all()
    assert stale == []
    assert len(local) == 0


def test_finishing_threads_close_their_instances_while_thread_locals_are_created() -> None:
    errors: list[BaseException] = []
    closed = [0]
    lock = threading.Lock()
    stop = time.monotonic() + SECONDS

    def count_close(_: object) -> None:
        with lock:
            closed[0] += 1

    keep = tw.ThreadLocal(object, count_close)

    def creator() -> None:
        while time.monotonic() < stop:
            made = [tw.ThreadLocal(object) for _ in range(20)]
            del made  # and collected again: the module-level set shrinks too
            gc.collect(0)

    def finisher() -> None:
        while time.monotonic() < stop:
            keep.get()
            try:
                close_thread_locals()  # what every threadwise thread does as it ends
            except RuntimeError as exc:  # "Set changed size during iteration"
                errors.append(exc)

    with tiny_switch_interval():
        threads = [threading.Thread(target=creator), threading.Thread(target=creator)]
        threads += [threading.Thread(target=finisher) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert closed[0] > 0
    assert len(keep) == 0


@pytest.mark.skipif(
    sys.version_info < (3, 12),
    reason="CPython 3.11 can crash walking the stacks of threads that run meanwhile, which "
    "several threads formatting every stack at once provokes (fixed in 3.12)",
)
def test_the_watchdog_reports_an_episode_once_when_checked_from_many_threads() -> None:
    release = tw.Event()
    stalled = tw.spawn(release.wait)
    try:
        for _ in range(30):
            watchdog = tw.Watchdog(stall_after=0.0001, on_stall=lambda info: None)
            start = threading.Barrier(4)

            def checker(watchdog: tw.Watchdog = watchdog, start: threading.Barrier = start) -> None:
                start.wait()
                for _ in range(5):
                    watchdog.check()

            with tiny_switch_interval():
                run_threads(4, checker)
            names = [info.task for info in watchdog.reports]
            assert names.count(stalled.name) == 1, names
    finally:
        release.set()
        stalled.join(5)


def test_services_started_and_stopped_from_many_threads() -> None:
    services = [tw.Service(lambda: None, interval=0.001) for _ in range(40)]
    assert len({s.name for s in services}) == len(services)
    errors: list[BaseException] = []
    names: list[str] = []
    names_lock = threading.Lock()

    def churn() -> None:
        for service in services:
            try:
                service.start()
            except RuntimeError:
                pass  # another thread started it first: started once, as promised
            except BaseException as exc:
                errors.append(exc)
            if not service.stop(timeout=5):
                errors.append(AssertionError(f"{service.name} did not stop"))
            made = tw.Service(lambda: None).name
            with names_lock:
                names.append(made)

    with tiny_switch_interval():
        run_threads(4, churn)
    assert errors == []
    assert not any(s.running for s in services)
    assert len(set(names)) == len(names)  # default names stay unique


@pytest.mark.parametrize("who", ["the group", "an enclosing scope", "a task"])
@pytest.mark.parametrize("max_workers", [None, 2])
def test_a_cancel_racing_spawn_reaches_every_task(who: str, max_workers: int | None) -> None:
    """A group passes its scope's cancel on to its tasks itself (they are not in the scope
    tree): a cancel from another thread while the group spawns must reach every task, the
    ones being spawned at that instant too. A task it missed would sleep its full 10 s and
    end DONE instead of CANCELLED."""
    deadline = time.monotonic() + SECONDS
    runs = 0
    with tiny_switch_interval():
        while time.monotonic() < deadline or runs < 20:
            runs += 1
            tasks: list[tw.Task[None]] = []
            with tw.CancelScope() as outer, tw.TaskGroup(max_workers=max_workers) as g:
                if who == "a task":
                    g.spawn(g.cancel, "from a task")
                else:
                    cancel = g.cancel if who == "the group" else outer.cancel
                    threading.Thread(target=cancel).start()
                for _ in range(6):
                    tasks.append(g.spawn(tw.sleep, 10))
            states = {t.state for t in tasks}
            assert states == {tw.State.CANCELLED}, (runs, states)
