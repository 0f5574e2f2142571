"""Thread properties: names, ids, daemon flags, the current thread, and who is running.

Run it with ``python examples/tour/06_thread_properties.py`` (well under a second).

Everything ``threading`` tells you about a thread still works on threadwise's threads:
``name``, ``ident``, ``native_id``, ``daemon``, ``threading.current_thread()``,
``active_count()`` and ``enumerate()``. A ``tw.Task`` adds its own ``name``, ``ident``,
``native_id`` and ``state`` (and, while it waits, ``blocked_on``: lesson 7).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import threadwise as tw


@dataclass(frozen=True)
class Seen:
    """What a thread can find out about itself."""

    name: str
    ident: int | None
    native_id: int | None
    daemon: bool

    def __str__(self) -> str:
        return (
            f"name={self.name!r} ident={self.ident} native_id={self.native_id} daemon={self.daemon}"
        )


def look_around() -> Seen:
    me = threading.current_thread()
    return Seen(me.name, me.ident, me.native_id, me.daemon)


class Indexer(tw.Thread):
    def run(self) -> Seen:
        # current_thread() inside run() is this very object: a tw.Thread is a threading.Thread.
        assert threading.current_thread() is self
        return look_around()


def crawl(gate: tw.Event) -> Seen:
    gate.wait()  # hold the task here until main has had a look
    return look_around()


def wait_until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Poll ``condition`` until it holds (a demo helper: real code waits on an event)."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise RuntimeError("the demo did not reach the expected state in time")
        time.sleep(0.001)


def main() -> None:
    here = threading.current_thread()
    print(f"main thread: {look_around()}, is main_thread(): {here is threading.main_thread()}")

    indexer = Indexer(name="indexer")
    indexer.start()
    print(f"tw.Thread:   {indexer.result()}")
    indexer.join()

    # spawn() names each task, and its thread, after the function: crawl-1, crawl-2, ...
    before = set(threading.enumerate())
    gate = tw.Event(name="gate")
    tasks = [tw.spawn(crawl, gate) for _ in range(3)]
    wait_until(lambda: all(t.state is tw.State.BLOCKED for t in tasks))
    new = [thread.name for thread in threading.enumerate() if thread not in before]
    print(f"active_count() = {threading.active_count()}, new in enumerate(): {new}")
    for task in tasks:
        print(f"  task {task.name!r}: ident={task.ident} state={task.state.name}")
    gate.set()

    seen = tasks[0].result()
    print(f"inside {tasks[0].name}: {seen}")
    same = seen.ident == tasks[0].ident and seen.native_id == tasks[0].native_id
    print(f"Task.ident and Task.native_id are the thread's: {same}")
    # Idents are unique among *live* threads only: a finished thread's ident may be reused.

    # spawn's threads are daemon threads, so a stuck one can never hang the interpreter at
    # exit; threadwise still waits for unfinished tasks at a normal exit (lesson 9).
    for task in tasks:
        task.join()
    states = [task.state.name for task in tasks]
    print(f"after join(): states={states}, active_count() = {threading.active_count()}")


if __name__ == "__main__":
    main()
