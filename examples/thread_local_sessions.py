"""One client session per worker thread, closed when the thread ends: tw.ThreadLocal.

Run it with ``python examples/thread_local_sessions.py`` (well under a second).

HTTP sessions, database connections and similar clients are often not safe to share between
threads, and opening one per item is slow. ``tw.ThreadLocal(factory, close)`` gives every
thread its own instance, made on first ``get()``, and calls ``close`` on it when that thread
ends: here, when the map's workers shut down.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from typing import ClassVar

import threadwise as tw


class Session:
    """A stand-in for an HTTP session or a database connection."""

    _ids: ClassVar[Iterator[int]] = itertools.count(1)
    opened: ClassVar[list[Session]] = []  # every session made, for the printout
    lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self.id = next(Session._ids)
        self.owner = threading.current_thread().name
        self.requests = 0
        self.closed = False
        with Session.lock:
            Session.opened.append(self)

    def get(self, url: str) -> str:
        if self.closed:
            raise RuntimeError("session used after close")
        tw.sleep(0.005)  # the request (simulated)
        self.requests += 1
        return f"{url} via session {self.id}"

    def close(self) -> None:
        self.closed = True


sessions = tw.ThreadLocal(Session, close=Session.close)


def fetch(url: str) -> str:
    # The first call in each worker thread opens that thread's session; later calls reuse it.
    return sessions.get().get(url)


def sessions_for_map() -> None:
    urls = [f"https://example.invalid/item/{i}" for i in range(80)]
    pages = list(tw.map(fetch, urls, workers=4))
    print(f"fetched {len(pages)} pages with {len(Session.opened)} sessions for 4 workers")
    for session in Session.opened:
        print(f"  session {session.id}: {session.requests} requests in {session.owner}")
    # The workers have ended, so every session has been closed by now.
    print(f"all closed after the map: {all(s.closed for s in Session.opened)}")
    print(f"open sessions left: {len(sessions)}")


def sessions_for_tasks() -> None:
    # The same holds for any thread threadwise starts: a task's session is closed when the
    # task's thread ends.
    before = len(Session.opened)
    with tw.TaskGroup() as group:
        for i in range(3):
            group.spawn(fetch, f"https://example.invalid/task/{i}")
    made = Session.opened[before:]
    print(f"3 tasks opened {len(made)} sessions, all closed: {all(s.closed for s in made)}")


def close_all_now() -> None:
    # close_all() closes every open instance at once, e.g. before reconfiguring; the main
    # thread's session would otherwise live until the interpreter exits.
    main_session = sessions.get()
    print(f"main thread session open: {not main_session.closed}, open: {len(sessions)}")
    sessions.close_all()
    print(f"after close_all(): closed {main_session.closed}, open: {len(sessions)}")


def main() -> None:
    sessions_for_map()
    sessions_for_tasks()
    close_all_now()


if __name__ == "__main__":
    main()
