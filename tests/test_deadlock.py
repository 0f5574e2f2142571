"""Deadlock detection and lock-order checking.

A cycle of threads waiting for RLocks (only the holder can release one) is certain: the thread
closing it gets DeadlockError. A cycle through a plain Lock is not certain (any thread may
release a Lock: the hand-off pattern), so it is logged with the stacks after SUSPECT_AFTER
seconds and raises only in debug mode. In debug mode an A->B / B->A inversion of named locks is
also reported even when nothing deadlocked."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import threadwise as tw
from threadwise import _debug

PROMPT = 5.0


def wait_until(predicate: Callable[[], bool], timeout: float = PROMPT) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"condition not reached within {timeout} s")
        time.sleep(0.001)


@pytest.fixture
def debug_mode() -> Iterator[None]:
    """Debug mode on, with no lock orders remembered from other tests; restored afterwards."""
    previous = tw.debug()
    tw.debug(True)
    _debug.reset()
    try:
        yield
    finally:
        tw.debug(previous)
        _debug.reset()


@pytest.fixture
def debug_off() -> Iterator[None]:
    previous = tw.debug()
    tw.debug(False)
    _debug.reset()
    try:
        yield
    finally:
        tw.debug(previous)
        _debug.reset()


@pytest.fixture
def tiny_switch_interval() -> Iterator[None]:
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


class Outcome:
    """What each thread of a deadlock scenario ended with."""

    def __init__(self) -> None:
        self.errors: dict[str, tw.DeadlockError] = {}
        self.completed: list[str] = []
        self.lock = threading.Lock()


def take_in_order(
    first: tw.Lock, second: tw.Lock, barrier: threading.Barrier, outcome: Outcome
) -> None:
    me = threading.current_thread().name
    try:
        with first:
            barrier.wait(PROMPT)  # everyone holds its first lock: the cycle is certain
            with second:
                pass
    except tw.DeadlockError as exc:
        with outcome.lock:
            outcome.errors[me] = exc
    else:
        with outcome.lock:
            outcome.completed.append(me)


def run_cycle(locks: list[tw.Lock], names: list[str]) -> Outcome:
    """Thread i takes locks[i] then locks[i+1] (wrapping): a cycle of len(locks) threads."""
    outcome = Outcome()
    barrier = threading.Barrier(len(locks))
    threads = [
        threading.Thread(
            target=take_in_order,
            args=(locks[i], locks[(i + 1) % len(locks)], barrier, outcome),
            name=names[i],
        )
        for i in range(len(locks))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PROMPT)
    assert not any(t.is_alive() for t in threads), "a thread hung: the deadlock was not broken"
    return outcome


@pytest.mark.parametrize("kind", [tw.RLock])
def test_a_two_lock_deadlock_raises_in_exactly_one_thread(kind: type[tw.Lock]) -> None:
    accounts, ledger = kind(name="accounts"), kind(name="ledger")
    outcome = run_cycle([accounts, ledger], ["transfer-1", "transfer-2"])

    assert len(outcome.errors) == 1, outcome.errors
    assert len(outcome.completed) == 1  # the other thread got its lock and finished
    (loser, error), winner = next(iter(outcome.errors.items())), outcome.completed[0]
    assert {loser, winner} == {"transfer-1", "transfer-2"}
    message = str(error)
    for part in ("transfer-1", "transfer-2", f"{kind.__name__} 'accounts'", "'ledger'"):
        assert part in message, f"{part!r} not in {message!r}"
    assert message.startswith("deadlock: ")
    assert isinstance(error, RuntimeError)
    # Both locks are free again and usable.
    for lock in (accounts, ledger):
        assert not lock.locked()
        with lock:
            pass


def test_the_message_follows_the_cycle() -> None:
    # "left" takes A then B, "right" takes B then A.
    a, b = tw.RLock(name="A"), tw.RLock(name="B")
    outcome = run_cycle([a, b], ["left", "right"])
    ((loser, error),) = outcome.errors.items()
    other = "right" if loser == "left" else "left"
    wanted, other_wanted = ("B", "A") if loser == "left" else ("A", "B")
    assert str(error) == (
        f"deadlock: {loser} waits for RLock '{wanted}', held by {other}, which waits "
        f"for RLock '{other_wanted}', held by {loser} itself"
    )


def test_a_three_thread_cycle_names_every_thread_and_lock() -> None:
    locks: list[tw.Lock] = [tw.RLock(name=f"lock-{i}") for i in range(3)]
    names = [f"philosopher-{i}" for i in range(3)]
    outcome = run_cycle(locks, names)
    assert len(outcome.errors) == 1
    assert len(outcome.completed) == 2
    message = str(next(iter(outcome.errors.values())))
    for part in [*names, *(f"RLock 'lock-{i}'" for i in range(3))]:
        assert part in message, f"{part!r} not in {message!r}"


def test_acquiring_a_lock_you_hold_waits_for_the_hand_off() -> None:
    # Issue 9 point 3: a plain Lock may be released by any thread, so acquiring it again is
    # the one-shot signal pattern, not a deadlock (it raised DeadlockError at once before).
    lock = tw.Lock(name="signal")
    lock.acquire()
    releaser = threading.Timer(0.2, lock.release)
    releaser.start()
    try:
        assert lock.acquire(timeout=PROMPT)  # no DeadlockError: another thread releases it
    finally:
        releaser.join()
    lock.release()


def test_a_cycle_through_plain_locks_is_not_an_error(debug_off: None) -> None:
    # Two threads each hold a plain Lock and wait for the other's: a third thread releases
    # one of them (allowed for a Lock), and both go on. Nothing may raise.
    a, b = tw.Lock(name="a"), tw.Lock(name="b")
    holding = threading.Barrier(3)
    errors: list[BaseException] = []

    def take(first: tw.Lock, second: tw.Lock, release_first: bool) -> None:
        try:
            first.acquire()
            holding.wait(PROMPT)
            second.acquire()
            second.release()
            if release_first:
                first.release()
        except BaseException as exc:
            errors.append(exc)

    threads = [
        # a-then-b's `a` is released for it by the main thread.
        threading.Thread(target=take, args=(a, b, False), name="a-then-b"),
        threading.Thread(target=take, args=(b, a, True), name="b-then-a"),
    ]
    for thread in threads:
        thread.start()
    holding.wait(PROMPT)
    wait_until(lambda: all(t.is_alive() for t in threads))
    time.sleep(0.1)  # both are (or are about to be) waiting: the cycle exists
    a.release()  # the hand-off: a thread that does not hold `a` releases it
    for thread in threads:
        thread.join(PROMPT)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert not a.locked()
    assert not b.locked()


def test_a_lasting_cycle_through_a_plain_lock_is_logged_with_the_stacks(
    debug_off: None, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from threadwise import _sync

    monkeypatch.setattr(_sync, "SUSPECT_AFTER", 0.2)
    lock = tw.Lock(name="self")
    lock.acquire()
    releaser = threading.Timer(1.0, lock.release)  # ends the "deadlock" after the report
    releaser.start()
    with caplog.at_level(logging.WARNING, logger="threadwise"):
        try:
            assert lock.acquire()
        finally:
            releaser.join()
    lock.release()
    (record,) = [r for r in caplog.records if "possible deadlock" in r.getMessage()]
    message = record.getMessage()
    me = threading.current_thread().name
    assert f"{me} waits for Lock 'self', held by {me} itself" in message
    assert "waiting for 0.2 s" in message
    assert "test_a_lasting_cycle_through_a_plain_lock_is_logged_with_the_stacks" in message


def test_in_debug_mode_a_cycle_through_a_plain_lock_raises(debug_mode: None) -> None:
    lock = tw.Lock(name="self")
    with lock, pytest.raises(tw.DeadlockError) as info:
        lock.acquire()
    me = threading.current_thread().name
    assert str(info.value) == f"deadlock: {me} waits for Lock 'self', held by {me} itself"
    assert not lock.locked()


def test_a_cycle_mixing_an_rlock_and_a_plain_lock_is_only_suspected(
    debug_off: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from threadwise import _sync

    monkeypatch.setattr(_sync, "SUSPECT_AFTER", 60.0)
    r, plain = tw.RLock(name="r"), tw.Lock(name="plain")
    holding = threading.Barrier(2)
    errors: list[BaseException] = []

    def take_plain_then_r() -> None:
        try:
            plain.acquire()  # handed to the main thread later, released there
            holding.wait(PROMPT)
            with r:
                pass
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=take_plain_then_r, name="plain-then-r")
    with r:
        thread.start()
        holding.wait(PROMPT)
        wait_until(lambda: "RLock.acquire" in (_blocked_on(thread) or ""))
        # We close the cycle r -> plain -> r, but `plain` may be released by any thread:
        # here a timer does (the hand-off), so this is no deadlock and must not raise.
        releaser = threading.Timer(0.3, plain.release)
        releaser.start()
        assert plain.acquire()
        releaser.join()
    thread.join(PROMPT)
    assert not thread.is_alive()
    assert errors == []
    plain.release()


def _blocked_on(thread: threading.Thread) -> str | None:
    for info in tw.threads():
        if info.ident == thread.ident:
            return info.blocked_on
    return None


def test_a_timed_acquire_in_a_cycle_times_out_instead() -> None:
    # Only an acquire that would wait forever is a deadlock; a timed one gives up by itself.
    a, b = tw.Lock(name="a"), tw.Lock(name="b")
    holds_b = threading.Event()
    done = threading.Event()
    results: list[bool] = []

    def other() -> None:
        with b:
            holds_b.set()
            results.append(a.acquire(timeout=0.2))
        done.set()

    with a:
        thread = threading.Thread(target=other, name="timed")
        thread.start()
        assert holds_b.wait(PROMPT)
        wait_until(lambda: done.is_set() or a.locked())
        assert done.wait(PROMPT)
    thread.join()
    assert results == [False]


def test_the_thread_that_got_deadlock_error_can_back_off_and_retry() -> None:
    a, b = tw.RLock(name="a"), tw.RLock(name="b")
    barrier = threading.Barrier(2)
    done: list[str] = []
    errors: list[str] = []

    def transfer(first: tw.Lock, second: tw.Lock) -> None:
        for _attempt in range(3):
            try:
                with first:
                    if not errors:
                        barrier.wait(PROMPT)
                    with second:
                        done.append(threading.current_thread().name)
                        return
            except tw.DeadlockError:
                # Back off before retrying: the lock is not fair, so retrying at once could
                # take the first lock back before the other thread gets it (a real deadlock
                # again, and detected as such).
                errors.append(threading.current_thread().name)
                time.sleep(0.05)

    threads = [
        threading.Thread(target=transfer, args=(a, b), name="a-then-b"),
        threading.Thread(target=transfer, args=(b, a), name="b-then-a"),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PROMPT)
    assert not any(t.is_alive() for t in threads)
    assert len(errors) == 1
    assert sorted(done) == ["a-then-b", "b-then-a"]


def test_no_false_positive_under_heavy_contention(tiny_switch_interval: None) -> None:
    # 8 threads x 2000 acquires of two locks, always in the same order: many real waits, but
    # no cycle is possible, so no DeadlockError may ever be raised.
    first, second = tw.Lock(name="first"), tw.Lock(name="second")
    counter = [0]
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait(PROMPT)
        try:
            for _ in range(2000):
                with first:
                    time.sleep(0)  # let the others pile up on `first`: real waits, not luck
                    with second:
                        counter[0] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, name=f"ordered-{i}") for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert counter[0] == 8 * 2000


def test_no_false_positive_with_both_locks_under_contention_and_rlock_reentry(
    tiny_switch_interval: None,
) -> None:
    outer, inner = tw.RLock(name="outer"), tw.Lock(name="inner")
    counter = [0]
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(500):
                with outer, outer, inner:  # re-entering `outer` is never a wait
                    counter[0] += 1
        except BaseException as exc:
            errors.append(exc)

    with tw.TaskGroup() as group:
        for _ in range(6):
            group.spawn(worker)
    assert errors == []
    assert counter[0] == 6 * 500


# -- lock-order checking -----------------------------------------------------------------------


def take_a_then_b(a: tw.Lock, b: tw.Lock) -> None:
    with a, b:
        pass


def take_b_then_a(a: tw.Lock, b: tw.Lock) -> None:
    with b, a:
        pass


def run_in_thread(fn: Callable[..., object], *args: Any, name: str) -> None:
    thread = threading.Thread(target=fn, args=args, name=name)
    thread.start()
    thread.join(PROMPT)
    assert not thread.is_alive()


def test_an_order_inversion_is_reported_once_with_both_stacks(
    debug_mode: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="threadwise")
    a, b = tw.Lock(name="accounts"), tw.Lock(name="ledger")
    # The two threads run one after the other, so this run cannot deadlock...
    run_in_thread(take_a_then_b, a, b, name="deposit")
    assert tw.lock_order_violations() == []
    run_in_thread(take_b_then_a, a, b, name="audit")

    # ...but the two code paths can, one day: reported.
    (violation,) = tw.lock_order_violations()
    assert isinstance(violation, tw.LockOrderViolation)
    assert {violation.first, violation.second} == {"accounts", "ledger"}
    assert violation.first == "accounts"
    assert violation.second == "ledger"
    assert violation.earlier_thread == "deposit"
    assert violation.later_thread == "audit"
    assert "in take_a_then_b" in violation.earlier_stack
    assert "in take_b_then_a" not in violation.earlier_stack
    assert "in take_b_then_a" in violation.later_stack
    assert "in take_a_then_b" not in violation.later_stack
    # threadwise's own frames are left out of the stacks.
    assert "_sync.py" not in violation.earlier_stack + violation.later_stack
    text = str(violation)
    assert text.startswith("potential deadlock: locks 'accounts' and 'ledger'")
    assert "deposit took 'ledger' while holding 'accounts'" in text
    assert "audit took 'accounts' while holding 'ledger'" in text

    records = [r for r in caplog.records if r.name == "threadwise"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert records[0].getMessage() == text

    # Taking the locks in either order again reports nothing new.
    run_in_thread(take_b_then_a, a, b, name="audit-2")
    run_in_thread(take_a_then_b, a, b, name="deposit-2")
    assert len(tw.lock_order_violations()) == 1
    assert len([r for r in caplog.records if r.name == "threadwise"]) == 1


def test_a_consistent_order_is_not_reported(debug_mode: None) -> None:
    a, b, c = tw.Lock(name="a"), tw.RLock(name="b"), tw.Lock(name="c")

    def nested() -> None:
        with a, b, b, c:
            pass

    for i in range(3):
        run_in_thread(nested, name=f"nested-{i}")
    run_in_thread(take_a_then_b, a, c, name="a-then-c")
    assert tw.lock_order_violations() == []


def test_the_same_thread_inverting_its_own_order_is_reported(debug_mode: None) -> None:
    a, b = tw.Lock(name="x"), tw.Lock(name="y")
    take_a_then_b(a, b)
    take_b_then_a(a, b)
    (violation,) = tw.lock_order_violations()
    me = threading.current_thread().name
    assert violation.earlier_thread == violation.later_thread == me


def test_unnamed_locks_are_not_checked(debug_mode: None) -> None:
    a, b = tw.Lock(), tw.Lock()
    run_in_thread(take_a_then_b, a, b, name="one")
    run_in_thread(take_b_then_a, a, b, name="two")
    assert tw.lock_order_violations() == []


def test_no_report_with_debug_off(debug_off: None, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="threadwise")
    a, b = tw.Lock(name="accounts"), tw.Lock(name="ledger")
    run_in_thread(take_a_then_b, a, b, name="deposit")
    run_in_thread(take_b_then_a, a, b, name="audit")
    assert tw.lock_order_violations() == []
    assert [r for r in caplog.records if r.name == "threadwise"] == []


def test_debug_switch_returns_the_mode(debug_off: None) -> None:
    assert tw.debug() is False
    assert tw.debug(True) is True
    assert tw.debug() is True
    assert tw.debug(False) is False


def test_an_inversion_through_a_condition_wait_is_reported(debug_mode: None) -> None:
    # A Condition's wait releases and re-takes its lock; afterwards the thread holds the lock
    # again, so taking another lock there is an ordering like any other.
    state = tw.Lock(name="state")
    cond = tw.Condition(state)
    other = tw.Lock(name="other")

    def waits_then_takes_other() -> None:
        with cond:
            cond.wait(0.01)  # times out: nobody notifies
            with other:
                pass

    def takes_other_then_state() -> None:
        with other, cond:
            pass

    run_in_thread(waits_then_takes_other, name="consumer")
    run_in_thread(takes_other_then_state, name="producer")
    (violation,) = tw.lock_order_violations()
    assert {violation.first, violation.second} == {"state", "other"}


# -- the cost of the checks: benchmarks/bench_locks.py still runs ------------------------------

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_locks.py"


def test_bench_locks_quick_reports_every_row_and_both_goals(tmp_path: Path) -> None:
    # No timing is asserted: the goals are the benchmark's own PASS/FAIL lines.
    out_file = tmp_path / "locks.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", str(out_file)],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for form in ("with", "acquire/release"):
        for lock, mode in (
            ("threading.Lock", "stdlib"),
            ("tw.Lock('inner')", "debug off"),
            ("tw.Lock('inner')", "debug on"),
        ):
            row = rf"^{re.escape(lock)}\s+{mode}\s+{re.escape(form)}\s+[\d.]+\s+[\d.]+x"
            assert re.search(row, proc.stdout, re.MULTILINE), f"no row {row}:\n{proc.stdout}"
    assert re.search(
        r"^(PASS|FAIL)  debug off: worst ratio [\d.]+x \(goal <= 3x\)$", proc.stdout, re.MULTILINE
    )
    assert re.search(
        r"^(PASS|FAIL)  debug on: worst ratio [\d.]+x \(goal <= 10x\)$", proc.stdout, re.MULTILINE
    )
    data = json.loads(out_file.read_text(encoding="utf-8"))
    assert data["quick"] is True
    assert len(data["rows"]) == 6
    for row in data["rows"]:
        if row["mode"] != "stdlib":
            base = next(
                r for r in data["rows"] if r["mode"] == "stdlib" and r["form"] == row["form"]
            )
            assert row["ratio"] == pytest.approx(row["ns_per_pair"] / base["ns_per_pair"])
    assert [g["mode"] for g in data["goals"]] == ["debug off", "debug on"]
