"""Threads from functions: start a function in a thread, wait for it, get what it returned.

Run it with ``python examples/tour/01_threads_from_functions.py`` (about half a second).

With plain ``threading`` you build a ``Thread``, ``start()`` it and ``join()`` it, and whatever
the function returned is gone. ``tw.spawn(fn, *args)`` starts the thread at once and hands back
a ``Task``: ``result()`` waits for the function and returns its value, ``join(timeout)`` tells
you whether it finished instead of returning ``None`` either way.
"""

from __future__ import annotations

import threading

import threadwise as tw


def brew(drink: str, seconds: float) -> str:
    # tw.sleep is time.sleep that a cancellation can interrupt (lessons 7 and 9).
    tw.sleep(seconds)
    return f"{drink} ready after {seconds:g} s"


def with_plain_threading() -> None:
    thread = threading.Thread(target=brew, args=("tea", 0.05))
    thread.start()
    thread.join()  # returns None, finished or not; brew's return value is lost
    print(f"threading.Thread: joined, alive={thread.is_alive()}, but brew's value is lost")


def with_spawn() -> None:
    # spawn() starts the thread immediately: there is no separate start() to forget.
    task = tw.spawn(brew, "coffee", 0.4)
    print(f"spawned task {task.name!r}; the main thread carries on, done()={task.done()}")

    # join(timeout) returns whether the task finished, so a timeout cannot go unnoticed.
    finished = task.join(timeout=0.05)
    print(f"join(timeout=0.05) -> {finished} (still brewing)")

    # result(timeout) raises the builtin TimeoutError when the value is not ready in time.
    try:
        task.result(timeout=0.05)
    except TimeoutError as exc:
        print(f"result(timeout=0.05) raised TimeoutError: {exc}")

    # Without a timeout, result() waits as long as it takes and returns the value.
    print(f"result() -> {task.result()!r}")
    print(f"afterwards: done()={task.done()}, state={task.state.name}")


def main() -> None:
    with_plain_threading()
    with_spawn()


if __name__ == "__main__":
    main()
