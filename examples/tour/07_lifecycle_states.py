"""Lifecycle states: watch a thread go CREATED, RUNNING, BLOCKED, DONE - or FAILED, CANCELLED.

Run it with ``python examples/tour/07_lifecycle_states.py`` (well under a second).

The classic thread-state diagram (created, running, blocked, finished) is something plain
``threading`` cannot show you: ``is_alive()`` is all it has. Every threadwise task and
``tw.Thread`` has a ``state``, and while it waits in a threadwise primitive (lock, event,
queue, semaphore, sleep) it is BLOCKED and ``blocked_on`` says on what, and who holds it.
A finished task is DONE, FAILED or CANCELLED, which ``is_alive()`` could never tell apart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import threadwise as tw

seen: list[str] = []  # every state observed, in order


def show(what: str, thread: tw.Thread | tw.Task[Any]) -> None:
    seen.append(thread.state.name)
    line = f"{what:<34} state={thread.state.name}"
    if thread.blocked_on is not None:
        line += f"  blocked_on={thread.blocked_on!r}"
    print(line)


def wait_until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Poll ``condition`` until it holds (a demo helper: real code waits on an event)."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise RuntimeError("the demo did not reach the expected state in time")
        time.sleep(0.001)


def the_happy_path() -> None:
    config = tw.Lock(name="config")
    reached = threading.Event()  # stdlib events: threadwise does not track these waits,
    go_on = threading.Event()  # so the thread stays RUNNING while it waits in them

    def update_config() -> str:
        reached.set()
        go_on.wait()
        with config:  # a threadwise Lock: waiting for it shows as BLOCKED
            return "config updated"

    worker = tw.Thread(target=update_config, name="updater")
    show("built, not started", worker)

    worker.start()
    reached.wait()
    show("started, doing its work", worker)

    with config:  # main holds the lock, so the worker has to wait for it
        go_on.set()
        wait_until(lambda: worker.state is tw.State.BLOCKED)
        show("waiting for the lock main holds", worker)
    print(f"{'finished':<34} result={worker.result()!r}")
    show("after result()", worker)


def a_failure() -> None:
    def parse() -> int:
        return int("forty-two")

    task = tw.spawn(parse)
    task.join()
    show("raised an exception", task)
    print(f"{'':<34} exception()={task.exception()!r}")


def a_cancellation() -> None:
    never = tw.Event(name="never set")
    task = tw.spawn(never.wait)
    wait_until(lambda: task.state is tw.State.BLOCKED)
    show("waiting for an event", task)
    task.cancel("not needed any more")  # the wait raises tw.Cancelled inside the task
    task.join()
    show("cancelled while it waited", task)


def main() -> None:
    the_happy_path()
    a_failure()
    a_cancellation()
    in_order = list(dict.fromkeys(seen))
    print(f"states seen: {' -> '.join(in_order)}")
    print(f"all six: {set(in_order) == {state.name for state in tw.State}}")


if __name__ == "__main__":
    main()
