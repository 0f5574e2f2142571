"""Thread-local data: one instance per thread, closed when its thread ends.

Run it with ``python examples/tour/10_thread_local.py`` (well under a second).

``threading.local()`` gives each thread its own attributes, which is how code keeps
per-thread connections or buffers without locks. But it has no way to *close* what a thread
stored when that thread ends. ``tw.ThreadLocal(factory, close=...)`` makes the instance on a
thread's first ``get()`` and calls ``close(instance)`` exactly once when the thread ends (or on
``close_all()``, or at interpreter exit).
"""

from __future__ import annotations

import itertools
import threading

import threadwise as tw


class Connection:
    """A stand-in for a database connection that must be closed."""

    numbers = itertools.count(1)

    def __init__(self) -> None:
        self.number = next(Connection.numbers)
        self.thread = threading.current_thread().name
        self.queries = 0
        self.closed = False

    def query(self, sql: str) -> str:
        if self.closed:
            raise RuntimeError("query on a closed connection")
        self.queries += 1
        return f"{sql} on connection {self.number}"

    def close(self) -> None:
        self.closed = True


def remember_me(local: threading.local) -> str:
    before = getattr(local, "user", None)  # main's value is not visible here
    local.user = threading.current_thread().name
    return f"saw {before!r}, set {local.user!r}"


def plain_thread_local() -> None:
    # Each thread sees only its own attributes; nothing closes them when the thread ends.
    local = threading.local()
    local.user = "main"
    worker = tw.Thread(target=remember_me, args=(local,), name="worker")
    worker.start()
    print(f"threading.local: the worker {worker.result()}; main still sees {local.user!r}")


def with_close_hook() -> None:
    made: list[Connection] = []

    def connect() -> Connection:
        connection = Connection()
        made.append(connection)  # list.append is atomic: fine from several threads
        return connection

    connections = tw.ThreadLocal(connect, close=Connection.close)

    def handle(request: int) -> str:
        tw.sleep(0.01)
        return connections.get().query(f"SELECT {request}")  # first get() connects

    with tw.TaskGroup(name="requests", max_workers=3) as group:
        tasks = [group.spawn(handle, request) for request in range(12)]
    print(f"tw.ThreadLocal: {len(tasks)} requests on at most 3 worker threads")
    for connection in made:
        print(
            f"  connection {connection.number}: {connection.queries} queries "
            f"in {connection.thread}, closed={connection.closed}"
        )
    print(f"  connections made: {len(made)} (at most one per worker: {len(made) <= 3})")
    print(f"  all closed when their threads ended: {all(c.closed for c in made)}")
    print(f"  still open: {len(connections)}")

    # The main thread's instance lives as long as the main thread - or until close_all().
    mine = connections.get()
    print(f"main thread's connection open: {not mine.closed}; still open: {len(connections)}")
    connections.close_all()
    print(f"after close_all(): closed={mine.closed}; still open: {len(connections)}")


def main() -> None:
    plain_thread_local()
    with_close_hook()


if __name__ == "__main__":
    main()
