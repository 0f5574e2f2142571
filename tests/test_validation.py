"""Bad input raises TypeError/ValueError whose message names the argument and shows the value."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import threadwise as tw

NAN = float("nan")


def names(argument: str, value: object) -> str:
    """A pattern matching a message that names ``argument`` and then shows ``value``'s repr."""
    return rf"\b{re.escape(argument)}\b.*{re.escape(repr(value))}"


@pytest.fixture
def finished_task() -> tw.Task[int]:
    task = tw.spawn(int, "7")
    assert task.join(timeout=10)
    return task


# -- callables -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [42, "work", None, [print]])
def test_spawn_rejects_non_callable(fn: Any) -> None:
    with pytest.raises(TypeError, match=names("fn", fn)):
        tw.spawn(fn)


@pytest.mark.parametrize("fn", [42, "work", None])
def test_group_spawn_rejects_non_callable(fn: Any) -> None:
    with tw.TaskGroup() as group, pytest.raises(TypeError, match=names("fn", fn)):
        group.spawn(fn)


def test_thread_rejects_non_callable_target() -> None:
    with pytest.raises(TypeError, match=names("target", 3)):
        tw.Thread(target=3)  # type: ignore[arg-type]


def _returns_none(x: int) -> None:
    pass


def _returns_dict(x: int) -> dict[str, int]:
    return {"x": x}


def _returns_list(x: int) -> list[int]:
    return [x]


def _returns_generator(x: int) -> Iterator[int]:
    yield x


# The shape ``spawn(f(1))`` runs f in the caller and passes its result: the message must say to
# pass the function and its arguments separately, whatever f happened to return.
CALLED_BY_MISTAKE = [_returns_none, _returns_dict, _returns_list, _returns_generator]
HINT = r"pass the function and its arguments separately"


@pytest.mark.parametrize("f", CALLED_BY_MISTAKE, ids=lambda f: f.__name__)
def test_spawn_of_a_call_hints_to_pass_the_function(f: Callable[[int], Any]) -> None:
    value = f(1)
    with pytest.raises(TypeError, match=names("fn", value)) as excinfo:
        tw.spawn(value)
    assert re.search(HINT, str(excinfo.value)), str(excinfo.value)
    if hasattr(value, "close"):
        value.close()


@pytest.mark.parametrize("f", CALLED_BY_MISTAKE, ids=lambda f: f.__name__)
def test_group_spawn_of_a_call_hints_to_pass_the_function(f: Callable[[int], Any]) -> None:
    value = f(1)
    with tw.TaskGroup() as group, pytest.raises(TypeError) as excinfo:
        group.spawn(value)
    message = str(excinfo.value)
    assert re.search(names("fn", value), message), message
    assert re.search(HINT, message), message
    if hasattr(value, "close"):
        value.close()


# -- max_workers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, -1])
def test_max_workers_out_of_range(value: int) -> None:
    with pytest.raises(ValueError, match=names("max_workers", value)):
        tw.TaskGroup(max_workers=value)


@pytest.mark.parametrize("value", [1.5, "4", True])
def test_max_workers_wrong_type(value: Any) -> None:
    with pytest.raises(TypeError, match=names("max_workers", value)):
        tw.TaskGroup(max_workers=value)


def test_max_workers_valid_values_accepted() -> None:
    assert tw.TaskGroup(max_workers=1).max_workers == 1
    assert tw.TaskGroup(max_workers=None).max_workers is None


# -- timeouts ------------------------------------------------------------------------------------

BAD_TIMEOUTS = [-1, -0.5, NAN]


@pytest.mark.parametrize("value", BAD_TIMEOUTS)
def test_result_bad_timeout(finished_task: tw.Task[int], value: float) -> None:
    with pytest.raises(ValueError, match=names("timeout", value)):
        finished_task.result(timeout=value)
    assert finished_task.result() == 7


@pytest.mark.parametrize("value", BAD_TIMEOUTS)
def test_exception_bad_timeout(finished_task: tw.Task[int], value: float) -> None:
    with pytest.raises(ValueError, match=names("timeout", value)):
        finished_task.exception(timeout=value)


@pytest.mark.parametrize("value", BAD_TIMEOUTS)
def test_join_bad_timeout(finished_task: tw.Task[int], value: float) -> None:
    with pytest.raises(ValueError, match=names("timeout", value)):
        finished_task.join(timeout=value)


def test_result_timeout_wrong_type(finished_task: tw.Task[int]) -> None:
    with pytest.raises(TypeError, match=names("timeout", "1")):
        finished_task.result(timeout="1")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", BAD_TIMEOUTS)
def test_task_group_bad_timeout(value: float) -> None:
    with pytest.raises(ValueError, match=names("timeout", value)):
        tw.TaskGroup(timeout=value)


@pytest.mark.parametrize("value", BAD_TIMEOUTS)
def test_task_group_bad_grace(value: float) -> None:
    with pytest.raises(ValueError, match=names("grace", value)):
        tw.TaskGroup(grace=value)


@pytest.mark.parametrize("value", BAD_TIMEOUTS)
def test_move_on_after_bad_seconds(value: float) -> None:
    with pytest.raises(ValueError, match=names("seconds", value)):
        tw.move_on_after(value)


@pytest.mark.parametrize("value", BAD_TIMEOUTS)
def test_fail_after_bad_seconds(value: float) -> None:
    with pytest.raises(ValueError, match=names("seconds", value)):
        tw.fail_after(value)


@pytest.mark.parametrize("value", BAD_TIMEOUTS)
def test_sleep_bad_seconds(value: float) -> None:
    with pytest.raises(ValueError, match=names("seconds", value)):
        tw.sleep(value)


def test_sleep_wrong_type() -> None:
    with pytest.raises(TypeError, match=names("seconds", "1")):
        tw.sleep("1")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", BAD_TIMEOUTS)
def test_queue_get_bad_timeout(value: float) -> None:
    queue: tw.Queue[int] = tw.Queue()
    with pytest.raises(ValueError, match=names("timeout", value)):
        queue.get(timeout=value)


@pytest.mark.parametrize("value", BAD_TIMEOUTS)
def test_queue_get_bad_timeout_with_items(value: float) -> None:
    queue: tw.Queue[int] = tw.Queue()
    queue.put(1)
    with pytest.raises(ValueError, match=names("timeout", value)):
        queue.get(timeout=value)
    assert queue.qsize() == 1  # the rejected call took nothing


@pytest.mark.parametrize("value", BAD_TIMEOUTS)
def test_queue_put_bad_timeout(value: float) -> None:
    queue: tw.Queue[int] = tw.Queue(maxsize=1)
    with pytest.raises(ValueError, match=names("timeout", value)):
        queue.put(1, timeout=value)
    assert queue.empty()


@pytest.mark.parametrize("value", [NAN])
def test_event_wait_bad_timeout(value: float) -> None:
    event = tw.Event()
    with pytest.raises(ValueError, match=names("timeout", value)):
        event.wait(timeout=value)


@pytest.mark.parametrize("value", [NAN])
def test_event_wait_bad_timeout_when_set(value: float) -> None:
    # Whether a bad argument is rejected must not depend on the event's state at that moment.
    event = tw.Event()
    event.set()
    with pytest.raises(ValueError, match=names("timeout", value)):
        event.wait(timeout=value)


@pytest.mark.parametrize("value", [-1, -0.5])
def test_negative_wait_timeouts_time_out_at_once_like_threading(value: float) -> None:
    # Issue 9 point 8: `wait(deadline - time.monotonic())` must not raise once it is late.
    event = tw.Event()
    assert event.wait(timeout=value) is False
    semaphore = tw.Semaphore(0)
    assert semaphore.acquire(timeout=value) is False
    assert threading.Semaphore(0).acquire(timeout=value) is False  # the behaviour copied
    cond = tw.Condition()
    with cond:
        assert cond.wait(timeout=value) is False
    barrier = tw.Barrier(2)
    with pytest.raises(threading.BrokenBarrierError):
        barrier.wait(timeout=value)


@pytest.mark.parametrize("value", [NAN])
def test_semaphore_acquire_bad_timeout(value: float) -> None:
    semaphore = tw.Semaphore(1)
    with pytest.raises(ValueError, match=names("timeout", value)):
        semaphore.acquire(timeout=value)
    assert semaphore.value == 1  # the rejected call took no slot


@pytest.mark.parametrize("value", [threading.TIMEOUT_MAX * 2, 10**400])
def test_timeouts_above_timeout_max_overflow_like_threading(value: float) -> None:
    with pytest.raises(OverflowError, match="timeout"):
        tw.Event().wait(value)
    with pytest.raises(OverflowError, match="timeout"):
        tw.Lock().acquire(timeout=value)
    with pytest.raises(OverflowError, match="timeout"):
        tw.Semaphore(0).acquire(timeout=value)
    with pytest.raises(OverflowError, match="timeout"):
        tw.Queue().get(timeout=value)
    with pytest.raises(OverflowError):
        threading.Lock().acquire(timeout=value)  # the behaviour copied


@pytest.mark.parametrize("value", [-2, -0.5, NAN])
@pytest.mark.parametrize("factory", [tw.Lock, tw.RLock], ids=lambda f: f.__name__)
def test_lock_acquire_bad_timeout_when_unlocked(
    factory: Callable[[], tw.Lock | tw.RLock], value: float
) -> None:
    # Like threading.Lock: only -1 (no limit) or a non-negative number is a valid timeout.
    lock = factory()
    with pytest.raises(ValueError, match="timeout"):
        lock.acquire(timeout=value)
    assert not lock.locked()


# -- primitives' constructors --------------------------------------------------------------------


def test_semaphore_negative_value() -> None:
    with pytest.raises(ValueError, match=names("value", -1)):
        tw.Semaphore(-1)


@pytest.mark.parametrize("value", ["1", 1.0, True])
def test_semaphore_value_wrong_type(value: Any) -> None:
    with pytest.raises(TypeError, match=names("value", value)):
        tw.Semaphore(value)


def test_semaphore_zero_is_valid() -> None:
    semaphore = tw.Semaphore(0)
    assert semaphore.acquire(blocking=False) is False


@pytest.mark.parametrize("value", [-1, -2])
def test_queue_negative_maxsize_is_unbounded_like_queue_queue(value: int) -> None:
    q: tw.Queue[int] = tw.Queue(maxsize=value)
    for i in range(100):
        q.put_nowait(i)
    assert q.qsize() == 100
    assert not q.full()


@pytest.mark.parametrize("value", ["3", 2.0, True])
def test_queue_maxsize_wrong_type(value: Any) -> None:
    with pytest.raises(TypeError, match=names("maxsize", value)):
        tw.Queue(maxsize=value)


@pytest.mark.parametrize(
    "factory",
    [tw.Lock, tw.RLock, tw.Event, tw.Semaphore, tw.Queue, tw.Condition, tw.TaskGroup],
    ids=lambda f: f.__name__,
)
def test_name_must_be_a_string(factory: Callable[..., Any]) -> None:
    with pytest.raises(TypeError, match=names("name", 3)):
        factory(name=3)


def test_lock_name_3() -> None:
    with pytest.raises(TypeError, match=r"\bname\b.*\b3\b"):
        tw.Lock(name=3)  # type: ignore[arg-type]
