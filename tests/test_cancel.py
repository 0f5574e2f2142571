"""Cancel scopes, deadlines, checkpoints and sleep."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import threadwise as tw
from threadwise.testing import tiny_switch_interval

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


# -- the exception -------------------------------------------------------------------------


def test_cancelled_is_a_base_exception_not_an_exception() -> None:
    assert issubclass(tw.Cancelled, BaseException)
    assert not issubclass(tw.Cancelled, Exception)


def test_except_exception_in_a_task_does_not_swallow_cancellation() -> None:
    swallowed: list[BaseException] = []

    def work() -> str:
        try:
            tw.sleep(30)
        except Exception as exc:  # the mistake every codebase has somewhere
            swallowed.append(exc)
            return "swallowed"
        return "slept"

    task = tw.spawn(work)
    wait_blocked(task)
    assert task.cancel()
    assert task.join(PROMPT)
    assert task.state is tw.State.CANCELLED
    assert swallowed == []
    with pytest.raises(tw.TaskCancelled):
        task.result()


# -- scopes --------------------------------------------------------------------------------


def test_cancel_scope_catches_its_own_cancellation() -> None:
    reached_end = False
    with tw.CancelScope() as scope:
        assert tw.current_scope() is scope
        scope.cancel("stop here")
        with pytest.raises(tw.Cancelled, match="stop here"):
            tw.checkpoint()
        tw.checkpoint()
        reached_end = True
    assert not reached_end
    assert scope.cancelled_caught
    assert scope.cancel_called
    assert tw.current_scope() is None


def test_scope_cancelled_without_a_checkpoint_catches_nothing() -> None:
    with tw.CancelScope() as scope:
        scope.cancel()
    assert scope.cancel_called
    assert not scope.cancelled_caught


def test_scope_restores_the_previous_scope_on_exit() -> None:
    with tw.CancelScope() as outer:
        with tw.CancelScope() as inner:
            assert tw.current_scope() is inner
        assert tw.current_scope() is outer
    assert tw.current_scope() is None


def test_scope_can_be_entered_only_once() -> None:
    scope = tw.CancelScope()
    with scope:
        pass
    with pytest.raises(RuntimeError), scope:
        pass


def test_cancelling_outer_cancels_inner_and_outer_catches() -> None:
    after_inner = False
    with tw.CancelScope() as outer:
        with tw.move_on_after(60) as inner:
            outer.cancel()
            assert inner.cancelled
            tw.checkpoint()
        after_inner = True  # not reached: the Cancelled belongs to outer
    assert not after_inner
    assert outer.cancelled_caught
    assert not inner.cancelled_caught


def test_cancelling_outer_from_another_thread_wakes_inner_wait() -> None:
    scopes: dict[str, tw.CancelScope] = {}

    def work() -> str:
        with tw.CancelScope() as outer:
            scopes["outer"] = outer
            with tw.move_on_after(60) as inner:
                scopes["inner"] = inner
                tw.sleep(30)
            return "inner swallowed the cancellation"
        return "outer caught"

    task = tw.spawn(work)
    wait_blocked(task)
    scopes["outer"].cancel()
    assert task.result(PROMPT) == "outer caught"
    assert scopes["outer"].cancelled_caught
    assert not scopes["inner"].cancelled_caught


def test_inner_deadline_is_caught_by_inner_and_outer_carries_on() -> None:
    with tw.move_on_after(60) as outer:
        with tw.move_on_after(0.02) as inner:
            tw.sleep(30)
        tw.checkpoint()  # outer is not cancelled
        after_inner = True
    assert after_inner
    assert inner.cancelled_caught
    assert not outer.cancelled_caught


def test_outer_deadline_passes_through_inner_scope() -> None:
    after_inner = False
    with tw.move_on_after(0.02) as outer:
        with tw.move_on_after(60) as inner:
            tw.sleep(30)
        after_inner = True
    assert not after_inner
    assert outer.cancelled_caught
    assert not inner.cancelled_caught


def test_task_cancel_is_not_caught_by_a_nested_move_on_after() -> None:
    def work() -> str:
        with tw.move_on_after(60):
            tw.sleep(30)
        return "carried on after the scope"

    task = tw.spawn(work)
    wait_blocked(task)
    task.cancel()
    assert task.join(PROMPT)
    assert task.state is tw.State.CANCELLED


def test_shield_parameter_is_not_silently_ignored() -> None:
    # Either shielding works as in trio/anyio, or the parameter is rejected.
    options: dict[str, Any] = {"shield": True}
    try:
        shielded = tw.CancelScope(**options)
    except TypeError:
        return
    completed = False
    with tw.CancelScope() as outer, shielded:
        outer.cancel()
        tw.checkpoint()  # a shielded scope does not see the outer cancellation
        completed = True
    assert completed


# -- move_on_after / fail_after --------------------------------------------------------------


def test_move_on_after_cancels_the_block_and_sets_cancelled_caught() -> None:
    after_sleep = False
    start = time.monotonic()
    with tw.move_on_after(0.05) as scope:
        tw.sleep(30)
        after_sleep = True
    assert not after_sleep
    assert scope.cancelled_caught
    assert scope.cancelled
    assert not scope.cancel_called
    assert time.monotonic() - start >= 0.05
    assert time.monotonic() - start < PROMPT


def test_move_on_after_does_not_catch_when_the_block_finishes_in_time() -> None:
    with tw.move_on_after(60) as scope:
        tw.sleep(0)
        value = 42
    assert value == 42
    assert not scope.cancelled_caught
    assert not scope.cancelled


def test_move_on_after_does_not_catch_other_exceptions() -> None:
    with pytest.raises(ZeroDivisionError), tw.move_on_after(0):
        _ = 1 / 0


def test_fail_after_raises_timeout_error() -> None:
    start = time.monotonic()
    with pytest.raises(TimeoutError) as info, tw.fail_after(0.05):
        tw.sleep(30)
    assert isinstance(info.value.__cause__, tw.Cancelled)
    assert not isinstance(info.value, tw.Cancelled)
    assert time.monotonic() - start < PROMPT


def test_fail_after_is_silent_when_the_block_finishes_in_time() -> None:
    with tw.fail_after(60) as scope:
        tw.checkpoint()
    assert not scope.cancelled_caught


def test_fail_after_does_not_convert_an_outer_cancellation() -> None:
    with tw.CancelScope() as outer, tw.fail_after(60):
        outer.cancel()
        tw.checkpoint()
    assert outer.cancelled_caught


@pytest.mark.parametrize("make", [tw.move_on_after, tw.fail_after])
@pytest.mark.parametrize("bad", [-1, float("nan")])
def test_deadline_helpers_reject_bad_seconds(
    make: Callable[[float], tw.CancelScope], bad: float
) -> None:
    with pytest.raises(ValueError, match="seconds"):
        make(bad)


# -- remaining() ---------------------------------------------------------------------------


def test_remaining_is_none_without_a_deadline() -> None:
    assert tw.remaining() is None
    with tw.CancelScope():
        assert tw.remaining() is None


def test_remaining_decreases_inside_a_deadline() -> None:
    with tw.move_on_after(10):
        first = tw.remaining()
        assert first is not None
        assert 0 < first <= 10
        tw.sleep(0.01)
        second = tw.remaining()
        assert second is not None
        assert second < first
    assert tw.remaining() is None


def test_remaining_is_zero_once_the_deadline_passed() -> None:
    with tw.move_on_after(0):
        assert tw.remaining() == 0.0


@pytest.mark.parametrize(("outer_s", "inner_s"), [(5, 60), (60, 5)])
def test_remaining_is_the_nearest_of_nested_deadlines(outer_s: float, inner_s: float) -> None:
    with tw.move_on_after(outer_s):
        with tw.move_on_after(inner_s):
            inner_left = tw.remaining()
            assert inner_left is not None
            assert 4 < inner_left <= 5
        outer_left = tw.remaining()
        assert outer_left is not None
        assert outer_s - 1 < outer_left <= outer_s


def test_remaining_inside_a_deadline_free_scope_nested_in_a_deadline() -> None:
    with tw.move_on_after(5), tw.CancelScope():
        left = tw.remaining()
        assert left is not None
        assert 4 < left <= 5


# -- checkpoint() and sleep() ----------------------------------------------------------------


def test_checkpoint_raises_only_once_cancelled() -> None:
    tw.checkpoint()  # no scope at all
    raised = 0
    with tw.CancelScope() as scope:
        tw.checkpoint()
        tw.checkpoint()
        scope.cancel()
        for _ in range(3):  # it keeps raising: a cancellation is a state, not an event
            try:
                tw.checkpoint()
            except tw.Cancelled:
                raised += 1
    assert raised == 3
    assert not scope.cancelled_caught  # every Cancelled was handled inside
    tw.checkpoint()  # outside the cancelled scope again


def test_checkpoint_raises_once_the_deadline_passed() -> None:
    with tw.move_on_after(0.02) as scope:
        tw.checkpoint()
        end = time.monotonic() + PROMPT
        while time.monotonic() < end:
            tw.checkpoint()
    assert scope.cancelled_caught


def test_sleep_zero_returns_at_once() -> None:
    start = time.monotonic()
    tw.sleep(0)
    with tw.move_on_after(60) as scope:
        tw.sleep(0)
    assert not scope.cancelled_caught
    assert time.monotonic() - start < PROMPT


def test_sleep_zero_is_a_checkpoint() -> None:
    with tw.CancelScope() as scope:
        scope.cancel()
        tw.sleep(0)
    assert scope.cancelled_caught


def test_sleep_sleeps() -> None:
    start = time.monotonic()
    tw.sleep(0.02)
    assert time.monotonic() - start >= 0.02


@pytest.mark.parametrize("bad", [-0.5, float("nan"), "1"])
def test_sleep_rejects_bad_seconds(bad: object) -> None:
    with pytest.raises((TypeError, ValueError), match="seconds"):
        tw.sleep(bad)  # type: ignore[arg-type]


# -- a wait entered after the cancellation -------------------------------------------------


@contextmanager
def _held_lock() -> Iterator[tw.Lock]:
    lock = tw.Lock()
    holder_has_it = threading.Event()
    let_go = threading.Event()

    def hold() -> None:
        with lock:
            holder_has_it.set()
            let_go.wait()

    holder = threading.Thread(target=hold, name="holder")
    holder.start()
    holder_has_it.wait()
    try:
        yield lock
    finally:
        let_go.set()
        holder.join()


@contextmanager
def _wait_on(kind: str) -> Iterator[Callable[[], object]]:
    """A wait of each kind that would block for a long time if nothing cancelled it."""
    if kind == "sleep":
        yield lambda: tw.sleep(30)
    elif kind == "Event.wait":
        yield tw.Event().wait
    elif kind == "Queue.get":
        yield tw.Queue[int]().get
    elif kind == "Queue.put":
        full: tw.Queue[int] = tw.Queue(maxsize=1)
        full.put(1)
        yield lambda: full.put(2)
    elif kind == "Semaphore.acquire":
        yield tw.Semaphore(0).acquire
    elif kind == "Lock.acquire":
        with _held_lock() as lock:
            yield lock.acquire
    elif kind == "Condition.wait":
        cond = tw.Condition()

        def wait() -> None:
            with cond:
                cond.wait()

        yield wait
    else:  # pragma: no cover - a typo in the parameter list
        raise AssertionError(kind)


WAITS = [
    "sleep",
    "Event.wait",
    "Queue.get",
    "Queue.put",
    "Semaphore.acquire",
    "Lock.acquire",
    "Condition.wait",
]


@pytest.mark.parametrize("kind", WAITS)
def test_wait_entered_in_a_cancelled_scope_raises_at_once(kind: str) -> None:
    with _wait_on(kind) as wait:
        start = time.monotonic()
        returned = False
        with tw.CancelScope() as scope:
            scope.cancel()
            wait()
            returned = True
        assert not returned
        assert scope.cancelled_caught
        assert time.monotonic() - start < PROMPT


@pytest.mark.parametrize("kind", WAITS)
def test_wait_entered_after_the_task_was_cancelled_raises_at_once(kind: str) -> None:
    with _wait_on(kind) as wait:
        gate = threading.Event()  # not a threadwise wait: the cancel cannot interrupt it
        entering: list[bool] = []

        def work() -> None:
            gate.wait()
            entering.append(True)
            wait()

        task = tw.spawn(work)
        wait_until(lambda: task.state is tw.State.RUNNING)
        task.cancel()
        gate.set()
        assert task.join(PROMPT)
        assert entering == [True]
        assert task.state is tw.State.CANCELLED


@pytest.mark.parametrize("kind", WAITS)
def test_deadline_already_passed_makes_a_wait_raise_at_once(kind: str) -> None:
    with _wait_on(kind) as wait, tw.move_on_after(0) as scope:
        wait()
    assert scope.cancelled_caught


# -- deadlines reach tasks -----------------------------------------------------------------


def test_group_timeout_reaches_a_task_blocked_in_a_wait() -> None:
    seen: dict[str, object] = {}

    def work() -> None:
        seen["remaining"] = tw.remaining()
        try:
            tw.sleep(30)
        except tw.Cancelled as exc:
            seen["cancelled"] = exc
            raise

    start = time.monotonic()
    with pytest.raises(TimeoutError), tw.TaskGroup(timeout=0.1) as group:
        task = group.spawn(work)
    assert time.monotonic() - start < PROMPT
    left = seen["remaining"]
    assert isinstance(left, float)
    assert 0 <= left <= 0.1
    assert isinstance(seen["cancelled"], tw.Cancelled)
    assert task.state is tw.State.CANCELLED


def test_group_timeout_bounds_a_longer_deadline_inside_a_task() -> None:
    seen: list[float | None] = []

    def work() -> str:
        with tw.move_on_after(60) as scope:
            seen.append(tw.remaining())
            tw.sleep(30)
        return f"caught by the task's own scope: {scope.cancelled_caught}"

    with pytest.raises(TimeoutError), tw.TaskGroup(timeout=0.1) as group:
        task = group.spawn(work)
    assert task.state is tw.State.CANCELLED
    assert seen[0] is not None
    assert 0 <= seen[0] <= 0.1


def test_group_timeout_reaches_a_task_spawned_by_a_task() -> None:
    children: list[tw.Task[None]] = []

    def child() -> None:
        tw.sleep(30)

    def parent(group: tw.TaskGroup) -> None:
        children.append(group.spawn(child))

    with pytest.raises(TimeoutError), tw.TaskGroup(timeout=0.1) as group:
        group.spawn(parent, group)
    assert [c.state for c in children] == [tw.State.CANCELLED]


def test_task_deadline_in_a_task_ends_only_that_block() -> None:
    def work() -> str:
        with tw.move_on_after(0.02) as scope:
            tw.Event().wait()
        assert scope.cancelled_caught
        tw.checkpoint()
        return "done"

    assert tw.spawn(work).result(PROMPT) == "done"


# -- hostile arguments ---------------------------------------------------------------------------


def test_nan_deadline_is_rejected() -> None:
    with pytest.raises(ValueError, match="deadline must not be NaN"):
        tw.CancelScope(deadline=float("nan"))


@pytest.mark.parametrize("bad", ["10", b"1", [1], True])
def test_non_number_deadline_is_rejected_at_the_call(bad: object) -> None:
    with pytest.raises(TypeError, match="deadline") as excinfo:
        tw.CancelScope(deadline=bad)  # type: ignore[arg-type]
    assert repr(bad) in str(excinfo.value)


def test_scope_name_is_checked() -> None:
    with pytest.raises(TypeError, match="name must be a str or None, got 5"):
        tw.CancelScope(name=5)  # type: ignore[arg-type]


def test_scope_cancel_reason_is_checked() -> None:
    scope = tw.CancelScope()
    with pytest.raises(TypeError, match="reason must be a str, got 5"):
        scope.cancel(5)  # type: ignore[arg-type]
    assert not scope.cancel_called


def test_huge_int_deadline_means_never() -> None:
    with tw.CancelScope(deadline=10**400) as scope:
        tw.checkpoint()
        assert scope.deadline == float("inf")
    with tw.CancelScope(deadline=-(10**400)) as scope:
        tw.checkpoint()  # long past: raises Cancelled, which the scope catches
    assert scope.cancelled_caught


@pytest.mark.parametrize("bad", ["1", None, [1]])
def test_sleep_rejects_non_numbers_at_the_call(bad: object) -> None:
    with pytest.raises(TypeError, match="seconds"):
        tw.sleep(bad)  # type: ignore[arg-type]


def test_huge_int_timeouts_mean_practically_forever() -> None:
    with tw.move_on_after(10**400) as scope:
        tw.sleep(0)
    assert not scope.cancelled_caught
    with tw.fail_after(10**400):
        tw.sleep(0)
    task = tw.spawn(tw.sleep, 10**400)  # before: OverflowError inside the task
    wait_blocked(task)
    task.cancel()
    assert task.join(timeout=PROMPT)
    assert task.cancelled()


# -- the scope stack -------------------------------------------------------------------------------


def test_out_of_order_exit_raises_and_keeps_the_stack_consistent() -> None:
    outer = tw.CancelScope(name="outer")
    inner = tw.CancelScope(name="inner")
    outer.__enter__()
    inner.__enter__()
    with pytest.raises(RuntimeError, match=r"cancel scope \(outer\) exited out of order"):
        outer.__exit__(None, None, None)
    assert tw.current_scope() is inner
    inner.__exit__(None, None, None)
    assert tw.current_scope() is None
    with pytest.raises(RuntimeError, match="already exited"):
        inner.__exit__(None, None, None)


def test_exit_from_another_thread_raises() -> None:
    scope = tw.CancelScope()
    scope.__enter__()
    try:
        task = tw.spawn(scope.__exit__, None, None, None)
        with pytest.raises(RuntimeError, match="did not enter it"):
            task.result(timeout=PROMPT)
    finally:
        scope.__exit__(None, None, None)
    assert tw.current_scope() is None


def test_scope_held_across_a_generator_yield_does_not_apply_to_the_consumer() -> None:
    def numbers() -> Iterator[int]:
        with tw.move_on_after(0.01):
            yield 1
            tw.sleep(PROMPT)  # cancelled by the generator's own scope
        yield 2

    gen = numbers()
    assert next(gen) == 1
    time.sleep(0.05)  # the generator's deadline has passed
    tw.sleep(0.01)  # the consumer is not under the generator's scope (before: Cancelled)
    tw.checkpoint()
    assert tw.remaining() is None
    assert tw.current_scope() is None
    with tw.CancelScope() as consumer_scope:
        assert consumer_scope._parent is None  # not a child of the generator's scope
    start = time.monotonic()
    assert next(gen) == 2  # resumed: the generator's own (passed) deadline cancels its wait
    assert time.monotonic() - start < PROMPT
    assert tw.current_scope() is None
    gen.close()


def test_scope_in_a_contextmanager_generator_still_covers_the_with_body() -> None:
    @contextmanager
    def deadline() -> Iterator[tw.CancelScope]:
        with tw.move_on_after(0.01) as scope:
            yield scope

    with deadline() as scope:
        tw.sleep(PROMPT)
    assert scope.cancelled_caught


def test_closing_a_generator_holding_a_scope_inside_another_scope() -> None:
    def holder() -> Iterator[None]:
        with tw.CancelScope():
            yield

    gen = holder()
    next(gen)
    with tw.CancelScope() as outer:
        gen.close()  # exits the generator's scope while ``outer`` is on top: allowed
        assert tw.current_scope() is outer
    assert tw.current_scope() is None


# -- free-threading readiness ----------------------------------------------------------------------


def test_a_scope_entered_from_two_threads_at_once_admits_exactly_one() -> None:
    failures: list[int] = []
    with tiny_switch_interval():
        for _ in range(300):
            scope = tw.CancelScope()
            start = threading.Barrier(2)
            entered: list[bool] = []
            lock = threading.Lock()

            def enter(
                scope: tw.CancelScope = scope,
                start: threading.Barrier = start,
                entered: list[bool] = entered,
                lock: threading.Lock = lock,
            ) -> None:
                start.wait()
                try:
                    scope.__enter__()
                except RuntimeError:
                    return
                with lock:
                    entered.append(True)
                scope.__exit__(None, None, None)

            workers = [threading.Thread(target=enter) for _ in range(2)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            if len(entered) != 1:
                failures.append(len(entered))
    assert failures == []


def test_child_scope_inherits_like_a_scope_attached_to_its_parent() -> None:
    # The internal constructor used for every task's scope must give the same result as
    # CancelScope(...) + _attach(parent): the nearer deadline, the parent's cancellation.
    from threadwise._cancel import CancelScope as Scope

    parent = Scope(deadline=time.monotonic() + 100)
    near = Scope._child(parent, "near", time.monotonic() + 1)
    far = Scope._child(parent, "far", time.monotonic() + 1000)
    plain = Scope._child(parent, None)
    assert near.deadline is not None
    assert parent.deadline is not None
    assert near.deadline < parent.deadline
    assert far.deadline == parent.deadline
    assert plain.deadline == parent.deadline
    assert plain.name is None
    assert not near.cancelled
    parent.cancel("stop")
    assert near.cancelled
    assert far.cancelled
    assert plain.cancelled
    late = Scope._child(parent, "late")
    assert late.cancelled
    assert late._cancelled_error().args == ("stop",)
    late._detach()
    assert late not in (parent._children or ())
    alone = Scope._child(None, "alone", 5.0)
    assert alone.deadline == 5.0
    assert not alone.cancel_called
