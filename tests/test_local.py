"""ThreadLocal: one instance per thread, closed exactly once when its thread ends."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

import threadwise as tw
from threadwise._local import close_thread_locals

WAIT = 5.0  # upper bound for anything the tests wait for; never reached when all is well


def wait_until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not reached within {WAIT} s")
        time.sleep(0.001)


class Resource:
    """Something per-thread that must be closed: a connection, a session, a file."""

    def __init__(self) -> None:
        self.owner = threading.get_ident()
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


class Tracker:
    """A factory and a close function that record what they made and what they closed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.created: list[Resource] = []
        self.closed: list[Resource] = []

    def make(self) -> Resource:
        resource = Resource()
        with self.lock:
            self.created.append(resource)
        return resource

    def close(self, resource: Resource) -> None:
        resource.close()
        with self.lock:
            self.closed.append(resource)

    def all_closed_once(self) -> bool:
        with self.lock:
            created = [id(r) for r in self.created]
            closed = [id(r) for r in self.closed]
        return Counter(created) == Counter(closed)


def test_one_instance_per_thread() -> None:
    tracker = Tracker()
    local = tw.ThreadLocal(tracker.make, tracker.close)
    mine = local.get()
    assert local.get() is mine
    assert mine.owner == threading.get_ident()
    others: list[Resource] = []
    thread = threading.Thread(target=lambda: others.extend([local.get(), local.get()]))
    thread.start()
    thread.join()
    assert others[0] is others[1]
    assert others[0] is not mine
    local.close_all()
    assert mine.closed == 1


def test_pipeline_workers_close_their_instances_exactly_once() -> None:
    tracker = Tracker()
    local = tw.ThreadLocal(tracker.make, tracker.close)
    users: Counter[int] = Counter()
    lock = threading.Lock()

    def fn(x: int) -> int:
        resource = local.get()
        assert resource.owner == threading.get_ident()  # never another thread's instance
        with lock:
            users[id(resource)] += 1
        time.sleep(0.0005)  # slow enough that the items spread over all four workers
        return x

    pipeline = tw.Pipeline(range(200)).map(fn, workers=4)
    assert list(pipeline) == list(range(200))
    # The workers have been joined: their instances are closed, each exactly once.
    assert len(tracker.created) == 4
    assert sorted(map(id, tracker.closed)) == sorted(map(id, tracker.created))
    assert all(r.closed == 1 for r in tracker.created)
    assert len(local) == 0
    assert sum(users.values()) == 200
    local.close_all()  # nothing is open: closes nothing again
    assert all(r.closed == 1 for r in tracker.created)


def test_map_workers_close_their_instances_when_the_loop_is_left() -> None:
    tracker = Tracker()
    local = tw.ThreadLocal(tracker.make, tracker.close)

    def fn(x: int) -> int:
        local.get()
        return x

    for x in tw.map(fn, range(10_000), workers=3):
        if x == 50:
            break
    assert tracker.created  # at least one worker made one
    assert tracker.all_closed_once()
    assert len(local) == 0


def test_spawned_task_closes_its_instance_when_its_thread_exits() -> None:
    tracker = Tracker()
    local = tw.ThreadLocal(tracker.make, tracker.close)
    task = tw.spawn(local.get)
    resource = task.result(timeout=WAIT)
    wait_until(lambda: resource.closed == 1)
    assert tracker.closed == [resource]
    assert len(local) == 0


def test_plain_thread_closes_its_instance() -> None:
    tracker = Tracker()
    local = tw.ThreadLocal(tracker.make, tracker.close)
    thread = threading.Thread(target=local.get)
    thread.start()
    thread.join()
    wait_until(lambda: len(tracker.closed) == 1)
    assert tracker.closed == tracker.created


def test_close_all_closes_every_open_instance_once() -> None:
    tracker = Tracker()
    local = tw.ThreadLocal(tracker.make, tracker.close)
    hold = threading.Event()
    ready = threading.Barrier(4, timeout=WAIT)

    def user() -> None:
        local.get()
        ready.wait()
        assert hold.wait(WAIT)

    threads = [threading.Thread(target=user) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        ready.wait()
        main = local.get()
        assert len(local) == 4
        local.close_all()
        assert len(local) == 0
        assert tracker.all_closed_once()
        assert main.closed == 1
        # This thread gets a fresh instance after close_all().
        fresh = local.get()
        assert fresh is not main
        assert len(local) == 1
    finally:
        hold.set()
        for thread in threads:
            thread.join()
    # The threads' old instances were already closed: their exit does not close them again.
    assert all(r.closed == 1 for r in tracker.created if r is not fresh)
    local.close_all()
    assert fresh.closed == 1
    assert tracker.all_closed_once()


def test_len_counts_open_instances() -> None:
    local = tw.ThreadLocal(Resource)
    assert len(local) == 0
    local.get()
    local.get()
    assert len(local) == 1
    local.close_all()
    assert len(local) == 0


def test_without_close() -> None:
    local = tw.ThreadLocal(Resource)
    results = list(tw.map(lambda x: local.get() is not None, range(100), workers=2))
    assert all(results)
    assert len(local) == 0


def test_an_exception_in_close_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def bad_close(resource: Resource) -> None:
        raise RuntimeError("cannot close")

    local = tw.ThreadLocal(Resource, bad_close)
    local.get()
    with caplog.at_level(logging.ERROR, logger="threadwise"):
        local.close_all()  # does not raise
    assert len(local) == 0
    records = [r for r in caplog.records if r.name == "threadwise"]
    assert len(records) == 1
    assert records[0].exc_info is not None
    assert isinstance(records[0].exc_info[1], RuntimeError)
    assert "close" in records[0].getMessage()


def test_an_exception_in_close_at_worker_exit_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def bad_close(resource: Resource) -> None:
        raise RuntimeError("cannot close")

    local = tw.ThreadLocal(Resource, bad_close)

    def fn(x: int) -> int:
        local.get()
        return x

    with caplog.at_level(logging.ERROR, logger="threadwise"):
        # The pipeline finishes normally: a failing close() does not become its failure.
        assert list(tw.Pipeline(range(20)).map(fn, workers=2)) == list(range(20))
    records = [r for r in caplog.records if r.name == "threadwise"]
    assert 1 <= len(records) <= 2  # one per worker that made an instance
    for record in records:
        assert record.exc_info is not None
        assert isinstance(record.exc_info[1], RuntimeError)


def test_a_close_that_logs_leaves_no_phantom_thread(caplog: pytest.LogCaptureFixture) -> None:
    """close() runs as its thread ends; if it logs (threading.current_thread() inside the
    logging module) no stand-in thread may be left registered in threading.enumerate()."""
    log = logging.getLogger("threadwise.tests.local")
    local = tw.ThreadLocal(Resource, lambda r: log.warning("closing %s", r.owner))
    baseline = {t.ident for t in threading.enumerate()}

    def fn(x: int) -> int:
        local.get()
        time.sleep(0.0005)
        return x

    with caplog.at_level(logging.WARNING, logger="threadwise.tests.local"):
        assert list(tw.Pipeline(range(50)).map(fn, workers=3)) == list(range(50))
    assert [r for r in caplog.records if r.getMessage().startswith("closing")]
    extra = [t.name for t in threading.enumerate() if t.ident not in baseline]
    assert extra == []


@pytest.mark.parametrize("argument", ["factory", "close"])
def test_non_callable_arguments(argument: str) -> None:
    kwargs: dict[str, object] = {"factory": Resource, "close": None, argument: 42}
    with pytest.raises(TypeError, match=rf"\b{argument}\b.*42"):
        tw.ThreadLocal(**kwargs)  # type: ignore[arg-type]


def test_instances_still_open_at_exit_are_closed(tmp_path: Path) -> None:
    script = tmp_path / "local_at_exit.py"
    script.write_text(
        textwrap.dedent(
            """
            import threadwise as tw

            local = tw.ThreadLocal(lambda: "conn", lambda c: print("closed", c, flush=True))
            local.get()
            print("exiting", flush=True)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["exiting", "closed conn"]


# -- close_all() racing get(), failing closes (issue 14 #12 #14) --------------------------------


def test_get_during_close_all_never_returns_the_instance_being_closed() -> None:
    closing = threading.Event()
    release = threading.Event()
    closed: list[Resource] = []

    def slow_close(resource: Resource) -> None:
        closing.set()
        closed.append(resource)
        assert release.wait(WAIT)  # a close that takes a while (flushing, a network goodbye)

    local = tw.ThreadLocal(Resource, slow_close)
    mine = local.get()
    closer = threading.Thread(target=local.close_all)
    closer.start()
    try:
        assert closing.wait(WAIT)
        assert closed == [mine]
        # Its close has begun: this thread must get a new instance, not the one being closed.
        fresh = local.get()
        assert fresh is not mine
        assert local.get() is fresh
        assert len(local) == 1
    finally:
        release.set()
        closer.join()
    local.close_all()
    assert closed == [mine, fresh]


def test_every_close_runs_when_one_raises_a_base_exception() -> None:
    class Boom(BaseException):
        pass

    ran: list[int] = []

    def closer(n: int) -> Callable[[Resource], None]:
        def close(resource: Resource) -> None:
            ran.append(n)
            raise Boom(n)

        return close

    locals_ = [tw.ThreadLocal(Resource, closer(n)) for n in range(3)]
    raised: list[BaseException] = []

    def user() -> None:
        for local in locals_:
            local.get()
        try:
            close_thread_locals()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=user)
    thread.start()
    thread.join()
    assert sorted(ran) == [0, 1, 2]  # the first Boom used to skip the other closes
    assert len(raised) == 1
    assert isinstance(raised[0], Boom)
    assert all(len(local) == 0 for local in locals_)


def test_close_all_runs_every_close_when_one_raises() -> None:
    class Boom(BaseException):
        pass

    closed: list[int] = []
    hold = threading.Event()
    ready = threading.Barrier(4, timeout=WAIT)

    def close(resource: Resource) -> None:
        closed.append(resource.owner)
        raise Boom

    local = tw.ThreadLocal(Resource, close)

    def user() -> None:
        local.get()
        ready.wait()
        assert hold.wait(WAIT)

    threads = [threading.Thread(target=user) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        ready.wait()
        with pytest.raises(Boom):
            local.close_all()
        assert len(closed) == 3  # the first Boom used to leave the other two open
        assert len(local) == 0
    finally:
        hold.set()
        for thread in threads:
            thread.join()
