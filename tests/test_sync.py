"""Lock, RLock, Condition, Semaphore, Event and Queue: behaviour, visibility and cancellation."""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import threadwise as tw

# Generous bound for "promptly": only a hang or a missed wake-up comes anywhere near it.
PROMPT = 5.0


def wait_until(predicate: Callable[[], bool], timeout: float = PROMPT) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"condition not reached within {timeout} s")
        time.sleep(0.001)


def wait_blocked(task: tw.Task[Any]) -> None:
    wait_until(lambda: task.state is tw.State.BLOCKED)


@pytest.fixture
def tiny_switch_interval() -> Iterator[None]:
    """Make the interpreter switch threads as often as it can, to expose races."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


class Holder:
    """A named thread that holds a lock (``times`` deep) until told to let go."""

    def __init__(self, lock: tw.Lock, name: str, times: int = 1) -> None:
        self.lock = lock
        self.times = times
        self._has_it = threading.Event()
        self._let_go = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name)

    def _run(self) -> None:
        for _ in range(self.times):
            self.lock.acquire()
        self._has_it.set()
        self._let_go.wait()
        for _ in range(self.times):
            self.lock.release()

    @property
    def ident(self) -> int | None:
        return self.thread.ident

    def let_go(self) -> None:
        self._let_go.set()
        self.thread.join()

    def __enter__(self) -> Holder:
        self.thread.start()
        self._has_it.wait()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.let_go()


def _wait_then_return(gate: tw.Event, value: str) -> str:
    gate.wait()
    return value


# -- one blocking wait of each primitive ---------------------------------------------------


@dataclass
class Blocking:
    """A call that blocks until something else happens, and how to check the primitive after."""

    wait: Callable[[], object]
    fragments: tuple[str, ...]  # each appears in the waiting task's ``blocked_on``
    check: Callable[[], None]  # after the waiter gave up: the primitive is still consistent


def _lock_case(cls: type[tw.Lock], times: int) -> Callable[[], AbstractContextManager[Blocking]]:
    kind = cls.__name__

    @contextmanager
    def case() -> Iterator[Blocking]:
        lock = cls(name="db")
        with Holder(lock, name=f"{kind.lower()}-holder", times=times) as holder:

            def check() -> None:
                assert lock.owner == holder.ident  # the waiter did not take it
                holder.let_go()
                assert not lock.locked()
                assert lock.owner is None
                taker = tw.spawn(lock.acquire, timeout=PROMPT)
                assert taker.result(PROMPT) is True
                assert lock.owner == taker.ident

            yield Blocking(
                lock.acquire,
                (f"{kind}.acquire", f"{kind} 'db'", f"held by {kind.lower()}-holder"),
                check,
            )

    return case


def _wait_for_notify(cond: tw.Condition) -> bool:
    with cond:
        return cond.wait(PROMPT)


def _condition_case(reentrant: bool) -> Callable[[], AbstractContextManager[Blocking]]:
    @contextmanager
    def case() -> Iterator[Blocking]:
        lock: tw.Lock = tw.RLock("cv-lock") if reentrant else tw.Lock("cv-lock")
        cond = tw.Condition(lock, name="cv")
        owned_when_raised: list[bool] = []

        def wait() -> None:
            with cond:
                if reentrant:
                    lock.acquire()  # held twice: wait must release and restore both levels
                try:
                    cond.wait()
                except BaseException:
                    owned_when_raised.append(lock.locked() and lock.owner == threading.get_ident())
                    raise
                finally:
                    if reentrant:
                        lock.release()

        def check() -> None:
            assert owned_when_raised == [True]
            assert not lock.locked()
            # The waiter that gave up left nothing behind that would absorb a notify.
            fresh = tw.spawn(_wait_for_notify, cond)
            wait_blocked(fresh)
            with cond:
                cond.notify()
            assert fresh.result(PROMPT) is True

        yield Blocking(wait, ("Condition.wait", "Condition 'cv'"), check)

    return case


@contextmanager
def _semaphore_case() -> Iterator[Blocking]:
    sem = tw.Semaphore(0, name="slots")

    def check() -> None:
        assert sem.value == 0
        sem.release()
        assert sem.acquire(blocking=False)
        assert not sem.acquire(blocking=False)

    yield Blocking(sem.acquire, ("Semaphore.acquire", "Semaphore 'slots'"), check)


@contextmanager
def _event_case() -> Iterator[Blocking]:
    event = tw.Event(name="go")

    def check() -> None:
        assert not event.is_set()
        event.set()
        assert event.wait(0)

    yield Blocking(event.wait, ("Event.wait", "Event 'go'"), check)


@contextmanager
def _queue_get_case() -> Iterator[Blocking]:
    q: tw.Queue[int] = tw.Queue(name="jobs")

    def check() -> None:
        assert q.empty()
        q.put(1)
        assert tw.spawn(q.get).result(PROMPT) == 1
        assert q.empty()

    yield Blocking(q.get, ("Queue.get on 'jobs'",), check)


@contextmanager
def _queue_put_case() -> Iterator[Blocking]:
    q: tw.Queue[str] = tw.Queue(maxsize=1, name="out")
    q.put("first")

    def check() -> None:
        assert q.qsize() == 1
        assert q.get_nowait() == "first"
        assert q.empty()  # the abandoned put did not sneak its item in
        q.put_nowait("third")
        assert q.get_nowait() == "third"

    yield Blocking(lambda: q.put("second"), ("Queue.put on 'out'",), check)


def _task_case(method: str) -> Callable[[], AbstractContextManager[Blocking]]:
    @contextmanager
    def case() -> Iterator[Blocking]:
        gate = tw.Event()
        other = tw.spawn(_wait_then_return, gate, "value")
        try:

            def check() -> None:
                # Giving up waiting for a task does not cancel that task.
                assert other.state in (tw.State.RUNNING, tw.State.BLOCKED)
                gate.set()
                assert other.result(PROMPT) == "value"

            yield Blocking(getattr(other, method), (other.name,), check)
        finally:
            gate.set()
            other.join(PROMPT)

    return case


@contextmanager
def _sleep_case() -> Iterator[Blocking]:
    yield Blocking(lambda: tw.sleep(30), ("sleep(30)",), lambda: None)


CASES = [
    pytest.param(_lock_case(tw.Lock, 1), id="Lock.acquire"),
    pytest.param(_lock_case(tw.RLock, 2), id="RLock.acquire"),
    pytest.param(_condition_case(reentrant=False), id="Condition.wait-Lock"),
    pytest.param(_condition_case(reentrant=True), id="Condition.wait-RLock"),
    pytest.param(_semaphore_case, id="Semaphore.acquire"),
    pytest.param(_event_case, id="Event.wait"),
    pytest.param(_queue_get_case, id="Queue.get-empty"),
    pytest.param(_queue_put_case, id="Queue.put-full"),
    pytest.param(_task_case("result"), id="Task.result"),
    pytest.param(_task_case("join"), id="Task.join"),
    pytest.param(_sleep_case, id="sleep"),
]

Case = Callable[[], AbstractContextManager[Blocking]]


@pytest.mark.parametrize("case", CASES)
def test_blocked_task_shows_what_it_waits_on(case: Case) -> None:
    with case() as blocking:
        task = tw.spawn(blocking.wait)
        wait_blocked(task)
        described = task.blocked_on
        assert described is not None
        for fragment in blocking.fragments:
            assert fragment in described
        task.cancel()
        assert task.join(PROMPT)
        assert task.blocked_on is None


@pytest.mark.parametrize("case", CASES)
def test_cancel_interrupts_a_blocked_wait(case: Case) -> None:
    with case() as blocking:
        raised: list[BaseException] = []

        def run() -> str:
            try:
                blocking.wait()
            except BaseException as exc:
                raised.append(exc)
                raise
            return "the wait returned"

        task = tw.spawn(run)
        wait_blocked(task)
        assert task.cancel("stop waiting")
        assert task.join(PROMPT)
        assert task.state is tw.State.CANCELLED
        assert len(raised) == 1
        assert isinstance(raised[0], tw.Cancelled)
        assert "stop waiting" in str(raised[0])
        with pytest.raises(tw.TaskCancelled):
            task.result()
        blocking.check()


@pytest.mark.parametrize("where", ["task", "main thread"])
@pytest.mark.parametrize("case", CASES)
def test_deadline_ends_a_blocked_wait(case: Case, where: str) -> None:
    with case() as blocking:

        def run() -> bool:
            with tw.move_on_after(0.05) as scope:
                blocking.wait()
                return False  # the wait returned instead of being cancelled
            return scope.cancelled_caught

        if where == "task":
            assert tw.spawn(run).result(PROMPT) is True
        else:
            assert run() is True
        blocking.check()


# -- a cancelled waiter never swallows a hand-off meant for the next one --------------------


@dataclass
class Handoff:
    wait: Callable[[], object]
    give_one_and_cancel: Callable[[Callable[[], object]], None]  # hand one over, run the cancel
    check: Callable[[], None]  # after exactly one waiter got the hand-off


def _handoff_lock() -> Handoff:
    lock = tw.Lock()
    lock.acquire()

    def give(cancel: Callable[[], object]) -> None:
        lock.release()
        cancel()

    def check() -> None:
        assert lock.locked()

    return Handoff(lock.acquire, give, check)


def _handoff_semaphore() -> Handoff:
    sem = tw.Semaphore(0)

    def give(cancel: Callable[[], object]) -> None:
        sem.release()
        cancel()

    def check() -> None:
        assert sem.value == 0

    return Handoff(sem.acquire, give, check)


def _handoff_condition() -> Handoff:
    cond = tw.Condition()

    def wait() -> None:
        with cond:
            assert cond.wait()

    def give(cancel: Callable[[], object]) -> None:
        with cond:
            cond.notify()
            cancel()

    return Handoff(wait, give, lambda: None)


def _handoff_queue_get() -> Handoff:
    q: tw.Queue[str] = tw.Queue()

    def give(cancel: Callable[[], object]) -> None:
        q.put("item")
        cancel()

    def check() -> None:
        assert q.empty()

    return Handoff(q.get, give, check)


def _handoff_queue_put() -> Handoff:
    q: tw.Queue[str] = tw.Queue(maxsize=1)
    q.put("old")

    def give(cancel: Callable[[], object]) -> None:
        assert q.get() == "old"
        cancel()

    def check() -> None:
        assert q.qsize() == 1
        assert q.get_nowait() == "new"

    return Handoff(lambda: q.put("new"), give, check)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(_handoff_lock, id="Lock"),
        pytest.param(_handoff_semaphore, id="Semaphore"),
        pytest.param(_handoff_condition, id="Condition"),
        pytest.param(_handoff_queue_get, id="Queue.get"),
        pytest.param(_handoff_queue_put, id="Queue.put"),
    ],
)
def test_cancelled_waiter_passes_a_hand_off_on(make: Callable[[], Handoff]) -> None:
    for _ in range(20):
        handoff = make()
        first = tw.spawn(handoff.wait)
        wait_blocked(first)
        second = tw.spawn(handoff.wait)
        wait_blocked(second)
        handoff.give_one_and_cancel(first.cancel)
        assert first.join(PROMPT)
        if first.state is tw.State.CANCELLED:
            # The hand-off may have reached `first` as it was cancelled: it must move on.
            assert second.join(PROMPT), "the hand-off was lost with the cancelled waiter"
        else:
            assert first.state is tw.State.DONE  # it won the race: nothing left for second
            second.cancel()
            assert second.join(PROMPT)
        states = sorted(t.state.name for t in (first, second))
        assert states == ["CANCELLED", "DONE"]
        handoff.check()


# -- Lock and RLock ------------------------------------------------------------------------


def _switch_point() -> None:
    """A Python-level call: a place where the interpreter may switch threads."""


@pytest.mark.parametrize("cls", [tw.Lock, tw.RLock])
@pytest.mark.usefixtures("tiny_switch_interval")
def test_lock_mutual_exclusion_under_contention(cls: type[tw.Lock]) -> None:
    lock = cls()
    shared = {"counter": 0, "inside": 0, "overlaps": 0}
    start = threading.Barrier(8)  # all threads contend from the first iteration

    def work() -> None:
        start.wait()
        for _ in range(1000):
            with lock:
                shared["inside"] += 1
                if shared["inside"] > 1:
                    shared["overlaps"] += 1
                value = shared["counter"]
                _switch_point()  # without the lock this loses updates and shows overlaps
                shared["counter"] = value + 1
                shared["inside"] -= 1

    tasks = [tw.spawn(work) for _ in range(8)]
    for task in tasks:
        task.result(30)
    assert shared == {"counter": 8000, "inside": 0, "overlaps": 0}
    assert not lock.locked()


def test_lock_basics() -> None:
    lock = tw.Lock("basic")
    assert lock.name == "basic"
    assert not lock.locked()
    assert lock.owner is None
    assert lock.acquire()
    assert lock.locked()
    assert lock.owner == threading.get_ident()
    assert not lock.acquire(blocking=False)  # not re-entrant
    assert not lock.acquire(timeout=0.01)
    lock.release()
    assert not lock.locked()
    with pytest.raises(RuntimeError):
        lock.release()
    with lock:
        assert lock.locked()
    assert not lock.locked()
    with pytest.raises(ValueError, match="timeout"):
        lock.acquire(False, 1)
    assert "basic" in repr(lock)


def test_lock_acquire_times_out_while_another_thread_holds_it() -> None:
    lock = tw.Lock()
    with Holder(lock, name="holder"):
        start = time.monotonic()
        assert not lock.acquire(timeout=0.02)
        assert time.monotonic() - start >= 0.02
        assert not tw.spawn(lock.acquire, False).result(PROMPT)
    assert lock.acquire(timeout=PROMPT)


def test_lock_blocked_acquirer_gets_it_when_released() -> None:
    lock = tw.Lock()
    lock.acquire()
    waiter = tw.spawn(lock.acquire)
    wait_blocked(waiter)
    lock.release()
    assert waiter.result(PROMPT) is True
    assert lock.owner == waiter.ident


def test_rlock_is_reentrant() -> None:
    lock = tw.RLock("re")
    me = threading.get_ident()
    for _ in range(3):
        assert lock.acquire()
    assert lock.owner == me
    assert not tw.spawn(lock.acquire, False).result(PROMPT)
    lock.release()
    lock.release()
    assert lock.locked()
    assert lock.owner == me
    assert not tw.spawn(lock.acquire, False).result(PROMPT)
    lock.release()
    assert not lock.locked()
    assert lock.owner is None
    taker = tw.spawn(lock.acquire, False)
    assert taker.result(PROMPT) is True
    assert lock.owner == taker.ident


def test_rlock_release_by_non_owner_raises() -> None:
    lock = tw.RLock()
    with pytest.raises(RuntimeError):
        lock.release()  # nobody holds it
    with lock:
        intruder = tw.spawn(lock.release)
        with pytest.raises(RuntimeError):
            intruder.result(PROMPT)
        assert lock.locked()
        assert lock.owner == threading.get_ident()
    assert not lock.locked()


def test_rlock_waiter_blocks_until_fully_released() -> None:
    lock = tw.RLock("nested")
    lock.acquire()
    lock.acquire()
    waiter = tw.spawn(lock.acquire)
    wait_blocked(waiter)
    lock.release()
    assert waiter.state is tw.State.BLOCKED
    assert lock.owner == threading.get_ident()
    lock.release()
    assert waiter.result(PROMPT) is True


# -- Condition -----------------------------------------------------------------------------


def test_condition_rejects_something_that_is_not_a_lock() -> None:
    with pytest.raises(TypeError, match="lock"):
        tw.Condition(object())


def test_condition_accepts_a_threading_lock_like_threading_condition() -> None:
    cond = tw.Condition(threading.Lock())
    with cond:
        assert cond.wait(0.01) is False
        cond.notify()


def test_condition_wait_and_notify_need_the_lock() -> None:
    cond = tw.Condition()
    with pytest.raises(RuntimeError):
        cond.wait(0)
    with pytest.raises(RuntimeError):
        cond.notify()
    with pytest.raises(RuntimeError):
        cond.notify_all()


def test_condition_wait_times_out_holding_the_lock() -> None:
    lock = tw.Lock()
    cond = tw.Condition(lock)
    with cond:
        start = time.monotonic()
        assert cond.wait(0.02) is False
        assert time.monotonic() - start >= 0.02
        assert lock.locked()
        assert lock.owner == threading.get_ident()


def test_condition_notify_wakes_one_then_notify_all_wakes_the_rest() -> None:
    cond = tw.Condition(name="turns")
    woken: list[int] = []

    def waiter(i: int) -> None:
        with cond:
            assert cond.wait()
            woken.append(i)

    tasks = []
    for i in range(3):
        tasks.append(tw.spawn(waiter, i))
        wait_blocked(tasks[-1])
    with cond:
        cond.notify()
    wait_until(lambda: len(woken) == 1)
    assert woken == [0]  # waiters are woken in the order they started waiting
    tw.sleep(0.05)  # give a wrongly woken waiter the chance to show up
    assert woken == [0]
    assert [t.state for t in tasks[1:]] == [tw.State.BLOCKED] * 2
    with cond:
        cond.notify_all()
    for task in tasks:
        task.result(PROMPT)
    assert sorted(woken) == [0, 1, 2]


def test_condition_notify_n() -> None:
    cond = tw.Condition()
    woken: list[int] = []

    def waiter(i: int) -> None:
        with cond:
            if cond.wait(PROMPT):
                woken.append(i)

    tasks = []
    for i in range(4):
        tasks.append(tw.spawn(waiter, i))
        wait_blocked(tasks[-1])
    with cond:
        cond.notify(2)
    wait_until(lambda: len(woken) == 2)
    with cond:
        cond.notify(5)  # more than are waiting is fine
    for task in tasks:
        task.result(PROMPT)
    assert sorted(woken) == [0, 1, 2, 3]


def test_condition_wait_for_a_predicate() -> None:
    cond = tw.Condition()
    box: list[int] = []

    def consumer() -> int:
        with cond:
            return cond.wait_for(lambda: len(box) >= 3 and sum(box))

    task = tw.spawn(consumer)
    for value in (1, 2, 3):
        wait_blocked(task)
        with cond:
            box.append(value)
            cond.notify_all()
    assert task.result(PROMPT) == 6


def test_condition_wait_for_times_out_with_the_predicate_value() -> None:
    cond = tw.Condition()
    with cond:
        start = time.monotonic()
        assert cond.wait_for(lambda: 0, timeout=0.02) == 0
        assert time.monotonic() - start >= 0.02
        assert cond.wait_for(lambda: "ready", timeout=0) == "ready"


def test_condition_wait_releases_and_restores_a_nested_rlock() -> None:
    lock = tw.RLock()
    cond = tw.Condition(lock)

    def notifier() -> None:
        with cond:  # possible only if wait released every level
            cond.notify()

    with cond, cond:
        task = tw.spawn(notifier)
        assert cond.wait(PROMPT) is True
        assert lock.owner == threading.get_ident()
        task.result(PROMPT)
        lock.release()
        assert lock.locked()  # still held once: both levels were restored
        assert lock.owner == threading.get_ident()
        lock.acquire()
    assert not lock.locked()


# -- Semaphore -----------------------------------------------------------------------------


def test_semaphore_bounds_concurrency() -> None:
    limit = 3
    sem = tw.Semaphore(limit, name="bounded")
    guard = threading.Lock()
    counts = {"inside": 0, "peak": 0, "done": 0}
    full = tw.Event()

    def work() -> None:
        with sem:
            with guard:
                counts["inside"] += 1
                counts["peak"] = max(counts["peak"], counts["inside"])
                if counts["inside"] == limit:
                    full.set()
            assert full.wait(PROMPT)  # hold the slot until the first wave filled all of them
            with guard:
                counts["inside"] -= 1
                counts["done"] += 1

    tasks = [tw.spawn(work) for _ in range(4 * limit)]
    for task in tasks:
        task.result(PROMPT)
    assert counts == {"inside": 0, "peak": limit, "done": 4 * limit}
    assert sem.value == limit


def test_semaphore_non_blocking_and_timeout() -> None:
    sem = tw.Semaphore(1)
    assert sem.acquire(blocking=False)
    assert not sem.acquire(blocking=False)
    start = time.monotonic()
    assert not sem.acquire(timeout=0.02)
    assert time.monotonic() - start >= 0.02
    with pytest.raises(ValueError, match="timeout"):
        sem.acquire(False, 1)
    sem.release()
    assert sem.value == 1


def test_semaphore_release_n_wakes_n_waiters() -> None:
    sem = tw.Semaphore(0)
    tasks = []
    for _ in range(3):
        tasks.append(tw.spawn(sem.acquire))
        wait_blocked(tasks[-1])
    sem.release(2)
    wait_until(lambda: sum(t.state is tw.State.DONE for t in tasks) == 2)
    assert sum(t.state is tw.State.BLOCKED for t in tasks) == 1
    sem.release()
    for task in tasks:
        assert task.result(PROMPT) is True
    assert sem.value == 0


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_semaphore_release_rejects_bad_n(bad: Any) -> None:
    with pytest.raises(ValueError, match="n"):
        tw.Semaphore(0).release(bad)


def test_semaphore_rejects_a_negative_value() -> None:
    with pytest.raises(ValueError, match="value"):
        tw.Semaphore(-1)


# -- Event ---------------------------------------------------------------------------------


def test_event_set_clear_and_timeouts() -> None:
    event = tw.Event()
    assert not event.is_set()
    start = time.monotonic()
    assert event.wait(0.02) is False
    assert time.monotonic() - start >= 0.02
    assert event.wait(0) is False
    event.set()
    assert event.is_set()
    assert event.wait() is True
    assert event.wait(0) is True
    event.clear()
    assert not event.is_set()
    assert event.wait(0.01) is False


def test_event_set_wakes_every_waiter() -> None:
    event = tw.Event()
    tasks = []
    for _ in range(4):
        tasks.append(tw.spawn(event.wait))
        wait_blocked(tasks[-1])
    event.set()
    assert [t.result(PROMPT) for t in tasks] == [True] * 4


def test_event_wait_with_timeout_is_woken_by_set() -> None:
    event = tw.Event()
    task = tw.spawn(event.wait, PROMPT)
    wait_blocked(task)
    event.set()
    assert task.result(PROMPT) is True


# -- Queue ---------------------------------------------------------------------------------


def test_queue_is_fifo() -> None:
    q: tw.Queue[int] = tw.Queue()
    for i in range(10):
        q.put(i)
    assert q.qsize() == 10
    assert not q.empty()
    assert not q.full()  # unbounded
    assert [q.get() for _ in range(10)] == list(range(10))
    assert q.empty()


def test_queue_nowait_and_timeouts() -> None:
    q: tw.Queue[int] = tw.Queue(maxsize=1)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(block=False)
    start = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.02)
    assert time.monotonic() - start >= 0.02
    q.put_nowait(1)
    assert q.full()
    with pytest.raises(queue.Full):
        q.put_nowait(2)
    with pytest.raises(queue.Full):
        q.put(2, block=False)
    start = time.monotonic()
    with pytest.raises(queue.Full):
        q.put(2, timeout=0.02)
    assert time.monotonic() - start >= 0.02
    assert q.get_nowait() == 1
    assert q.empty()


def test_queue_maxsize_blocks_the_producer_until_a_get() -> None:
    q: tw.Queue[int] = tw.Queue(maxsize=2)
    q.put(1)
    q.put(2)
    producer = tw.spawn(q.put, 3)
    wait_blocked(producer)
    assert q.qsize() == 2
    assert q.get() == 1
    producer.result(PROMPT)
    assert [q.get_nowait(), q.get_nowait()] == [2, 3]


def test_queue_get_blocks_until_a_put() -> None:
    q: tw.Queue[str] = tw.Queue()
    consumer = tw.spawn(q.get)
    wait_blocked(consumer)
    q.put("x")
    assert consumer.result(PROMPT) == "x"


def test_queue_close_rejects_puts_and_drains() -> None:
    q: tw.Queue[int] = tw.Queue()
    q.put(1)
    q.put(2)
    assert not q.closed
    q.close()
    q.close()  # idempotent
    assert q.closed
    with pytest.raises(tw.QueueClosed):
        q.put(3)
    with pytest.raises(tw.QueueClosed):
        q.put_nowait(3)
    assert q.get() == 1
    assert list(q) == [2]
    with pytest.raises(tw.QueueClosed):
        q.get()
    with pytest.raises(tw.QueueClosed):
        q.get_nowait()
    with pytest.raises(tw.QueueClosed):
        q.get(timeout=0.01)


def test_queue_close_fails_a_put_blocked_on_a_full_queue() -> None:
    q: tw.Queue[str] = tw.Queue(maxsize=1)
    q.put("kept")
    producer = tw.spawn(q.put, "rejected")
    wait_blocked(producer)
    q.close()
    with pytest.raises(tw.QueueClosed):
        producer.result(PROMPT)
    assert list(q) == ["kept"]


def test_queue_close_stops_blocked_consumers() -> None:
    q: tw.Queue[int] = tw.Queue()
    consumers = []
    for _ in range(3):
        consumers.append(tw.spawn(lambda: list(q)))
        wait_blocked(consumers[-1])
    q.close()
    assert [c.result(PROMPT) for c in consumers] == [[], [], []]


def test_queue_consumers_drain_then_stop() -> None:
    q: tw.Queue[int] = tw.Queue(maxsize=4)
    consumers = [tw.spawn(lambda: list(q)) for _ in range(3)]
    for i in range(100):
        q.put(i)
    q.close()
    received = [item for c in consumers for item in c.result(PROMPT)]
    assert sorted(received) == list(range(100))
    for c in consumers:
        got = c.result()
        assert got == sorted(got)  # one consumer sees items in queue order


@pytest.mark.parametrize(("maxsize", "error"), [("2", TypeError), (1.5, TypeError)])
def test_queue_rejects_a_bad_maxsize(maxsize: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="maxsize"):
        tw.Queue(maxsize=maxsize)


def _produce(q: tw.Queue[tuple[int, int, int]], producer: int, values: list[int]) -> None:
    for position, value in enumerate(values):
        q.put((producer, position, value))


ROUND_LIMIT = 10.0


def _run_close_round(batches: list[list[int]], consumers: int, maxsize: int) -> None:
    q: tw.Queue[tuple[int, int, int]] = tw.Queue(maxsize=maxsize)
    end = time.monotonic() + ROUND_LIMIT  # a lost wake-up shows as a TimeoutError, not a hang
    readers = [tw.spawn(lambda: list(q)) for _ in range(consumers)]
    writers = [tw.spawn(_produce, q, i, values) for i, values in enumerate(batches)]
    for writer in writers:
        writer.result(max(0.0, end - time.monotonic()))
    q.close()
    received = [reader.result(max(0.0, end - time.monotonic())) for reader in readers]
    produced = [(p, pos, v) for p, values in enumerate(batches) for pos, v in enumerate(values)]
    assert Counter(item for got in received for item in got) == Counter(produced)
    for got in received:  # FIFO: one consumer sees each producer's items in order
        for producer in range(len(batches)):
            positions = [pos for p, pos, _ in got if p == producer]
            assert positions == sorted(positions)


@pytest.mark.parametrize("consumers", [1, 4, 16])
@settings(max_examples=30, deadline=None)
@given(
    batches=st.lists(st.lists(st.integers(), max_size=30), min_size=1, max_size=4),
    maxsize=st.integers(min_value=0, max_value=8),
)
def test_close_delivers_every_item_exactly_once(
    consumers: int, batches: list[list[int]], maxsize: int
) -> None:
    _run_close_round(batches, consumers, maxsize)


@pytest.mark.usefixtures("tiny_switch_interval")
def test_no_lost_wakeups_under_contention() -> None:
    start = time.monotonic()
    for _ in range(3):
        _run_close_round([list(range(300))] * 6, consumers=6, maxsize=2)
    assert time.monotonic() - start < 3 * ROUND_LIMIT


# -- issue 9: drop-in behaviour of the standard library's primitives ---------------------------


def test_event_set_then_clear_still_wakes_every_waiter() -> None:
    # Point 1: set() immediately followed by clear() left the waiters blocked (lost wake-up).
    event = tw.Event()
    results: list[bool] = []
    lock = threading.Lock()

    def waiter() -> None:
        got = event.wait(PROMPT)
        with lock:
            results.append(got)

    threads = [threading.Thread(target=waiter) for _ in range(5)]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(event._cond._waiters) == 5)
    event.set()
    event.clear()
    for thread in threads:
        thread.join(PROMPT)
    assert results == [True] * 5


PRIMITIVES: list[Callable[[], object]] = [
    tw.Lock,
    tw.RLock,
    tw.Condition,
    tw.Semaphore,
    tw.BoundedSemaphore,
    tw.Event,
    lambda: tw.Barrier(2),
    tw.Queue,
    tw.LifoQueue,
    tw.PriorityQueue,
]


@pytest.mark.parametrize("factory", PRIMITIVES)
def test_every_primitive_can_be_weakly_referenced(factory: Callable[[], object]) -> None:
    # Point 2: __slots__ without __weakref__ made weakref.ref / WeakSet fail.
    import gc
    import weakref

    obj = factory()
    ref = weakref.ref(obj)
    assert ref() is obj
    weakref.WeakSet([obj])
    del obj
    gc.collect()
    assert ref() is None


def test_queue_subclass_hooks_change_the_order() -> None:
    # Point 7: put/get go through _init/_qsize/_put/_get, as in queue.Queue.
    class Newest(tw.Queue[int]):
        def _init(self, maxsize: int) -> None:
            self.queue = []

        def _put(self, item: int) -> None:
            self.queue.append(item)

        def _get(self) -> int:
            item: int = self.queue.pop()
            return item

    q = Newest()
    for i in range(3):
        q.put(i)
    assert [q.get() for _ in range(3)] == [2, 1, 0]
    lifo, prio = tw.LifoQueue[int](), tw.PriorityQueue[int]()
    for item in (3, 1, 2):
        lifo.put(item)
        prio.put(item)
    assert [lifo.get() for _ in range(3)] == [2, 1, 3]
    assert [prio.get() for _ in range(3)] == [1, 2, 3]


def test_queue_task_done_join_and_the_stdlib_attributes() -> None:
    q: tw.Queue[int] = tw.Queue(2)
    assert isinstance(q.not_empty, tw.Condition)
    assert isinstance(q.not_full, tw.Condition)
    assert isinstance(q.all_tasks_done, tw.Condition)
    q.put(1)
    with q.mutex:
        assert list(q.queue) == [1]
    q.maxsize = 1  # changeable, as in queue.Queue
    with pytest.raises(queue.Full):
        q.put_nowait(2)
    joined = tw.spawn(q.join)
    assert q.get() == 1
    assert not joined.join(0.05)  # one item still not done
    q.task_done()
    joined.result(PROMPT)
    with pytest.raises(ValueError, match="task_done"):
        q.task_done()


def test_queue_shutdown_drains_then_raises_and_immediate_drops() -> None:
    q: tw.Queue[int] = tw.Queue()
    q.put(1)
    q.shutdown()
    assert q.is_shutdown
    with pytest.raises(tw.QueueClosed):
        q.put(2)
    assert q.get() == 1
    with pytest.raises(tw.QueueClosed):
        q.get()
    if sys.version_info >= (3, 13):
        assert issubclass(tw.QueueClosed, queue.ShutDown)
    q2: tw.Queue[int] = tw.Queue()
    q2.put(1)
    q2.shutdown(immediate=True)
    with pytest.raises(tw.QueueClosed):
        q2.get_nowait()
    q2.join()  # the dropped item counts as done


def test_queue_shutdown_wakes_a_blocked_getter() -> None:
    q: tw.Queue[int] = tw.Queue()
    getter = tw.spawn(q.get)
    wait_until(lambda: getter.blocked_on is not None)
    q.shutdown()
    with pytest.raises(tw.QueueClosed):
        getter.result(PROMPT)


def test_reprs_look_like_the_stdlib() -> None:
    # Point 9: the shapes CPython's tests match.
    lock = tw.Lock()
    assert repr(lock).startswith("<unlocked threadwise.Lock object at 0x")
    with lock:
        assert repr(lock).startswith("<locked threadwise.Lock object owner=")
    assert repr(tw.Semaphore(3)).endswith(": value=3>")
    assert repr(tw.BoundedSemaphore(3)).endswith(": value=3/3>")
    event = tw.Event()
    assert repr(event).endswith(": unset>")
    barrier = tw.Barrier(3)
    assert repr(barrier).endswith(": waiters=0/3>")
    barrier.abort()
    assert repr(barrier).endswith(": broken>")
    assert "'db'" in repr(tw.Lock(name="db"))


def test_bounded_semaphore_refuses_a_release_past_its_value() -> None:
    sem = tw.BoundedSemaphore(1)
    with pytest.raises(ValueError, match="released too many times"):
        sem.release()
    with sem:
        assert sem.value == 0
    assert sem.value == 1


def test_barrier_shows_blocked_and_cancel_breaks_it() -> None:
    barrier = tw.Barrier(2, name="start")
    task = tw.spawn(barrier.wait)
    wait_until(lambda: task.blocked_on is not None)
    assert task.blocked_on == "Barrier.wait on Barrier 'start' (1/2 waiting)"
    (info,) = [t for t in tw.threads() if t.ident == task.ident]
    assert info.blocked_on == "Barrier.wait on Barrier 'start' (1/2 waiting)"
    task.cancel()
    with pytest.raises(tw.TaskCancelled):
        task.result(PROMPT)
    assert barrier.broken  # a party that left: the others would wait forever otherwise
    barrier.reset()
    assert not barrier.broken


def test_barrier_passes_and_runs_the_action_once() -> None:
    ran: list[int] = []
    barrier = tw.Barrier(3, action=lambda: ran.append(1))
    tasks = [tw.spawn(barrier.wait) for _ in range(3)]
    assert sorted(t.result(PROMPT) for t in tasks) == [0, 1, 2]
    assert ran == [1]


def test_barrier_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="parties"):
        tw.Barrier(0)
    with pytest.raises(TypeError, match="parties"):
        tw.Barrier("2")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="action"):
        tw.Barrier(2, action=5)  # type: ignore[arg-type]


def test_condition_notify_names_n() -> None:
    # Issue 14 point 15.
    cond = tw.Condition()
    with cond, pytest.raises(TypeError, match="n must be an int"):
        cond.notify("x")  # type: ignore[arg-type]


def test_debug_rejects_a_non_bool() -> None:
    # Issue 14 point 15: debug('yes') was accepted silently.
    with pytest.raises(TypeError, match="on must be True, False or None"):
        tw.debug("yes")  # type: ignore[arg-type]


def test_lock_at_fork_reinit_frees_it() -> None:
    for lock in (tw.Lock(), tw.RLock()):
        lock.acquire()
        lock._at_fork_reinit()
        assert not lock.locked()
        assert lock.acquire(blocking=False)
        lock.release()
