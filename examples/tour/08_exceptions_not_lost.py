"""Exceptions are not lost: a failure in a thread reaches the code that waits for it.

Run it with ``python examples/tour/08_exceptions_not_lost.py`` (well under a second).

With plain ``threading``, an exception in a thread is printed to stderr by
``threading.excepthook`` and then forgotten: ``join()`` returns normally and the caller
carries on as if the work had succeeded. threadwise keeps the exception: ``result()``
re-raises it in the caller with its original traceback, and a ``TaskGroup`` raises the
failures of its tasks together as an ``ExceptionGroup`` (after cancelling the others).
"""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import threading
import traceback

import threadwise as tw


def load_settings(path: str) -> dict[str, str]:
    raise FileNotFoundError(f"no settings file at {path}")


def the_pitfall() -> None:
    # The interpreter's default threading.excepthook prints the traceback to stderr; capture
    # stderr to show what it printed. (The default hook is set for the demonstration, in
    # case a tool such as a test runner has installed its own.)
    printed = io.StringIO()
    installed_hook = threading.excepthook
    threading.excepthook = threading.__excepthook__
    try:
        with contextlib.redirect_stderr(printed):
            thread = threading.Thread(target=load_settings, args=("app.toml",), name="loader")
            thread.start()
            thread.join()  # returns normally: nothing tells the caller the thread failed
    finally:
        threading.excepthook = installed_hook
    lines = printed.getvalue().splitlines()
    print("plain threading:")
    print(f"  stderr got {len(lines)} lines, from {lines[0]!r} to {lines[-1]!r}")
    print("  join() returned normally and the caller carried on: the error is lost to it")


def with_result() -> None:
    task = tw.spawn(load_settings, "app.toml")
    print("threadwise:")
    try:
        task.result()
    except FileNotFoundError as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        print(f"  result() re-raised FileNotFoundError: {exc}")
        print(f"  the traceback still ends in {where.name}(), line {where.lineno}")


def with_a_group() -> None:
    both_failing = threading.Barrier(2)  # so that both failures happen, deterministically

    def check_disk() -> None:
        both_failing.wait()
        raise OSError("disk full")

    def check_network() -> None:
        both_failing.wait()
        raise ConnectionError("network unreachable")

    try:
        with tw.TaskGroup(name="health checks") as group:
            slow = group.spawn(tw.sleep, 10)  # cancelled by the first failure
            group.spawn(check_disk)
            group.spawn(check_network)
    except ExceptionGroup as eg:
        print(f"  TaskGroup raised ExceptionGroup: {eg.message}")
        for error in sorted(eg.exceptions, key=repr):
            print(f"    - {error!r}")
        print(f"  the slow sibling was {slow.state.name}, not left running for 10 s")


class KeepRecords(logging.Handler):
    """Collects log records, to show what threadwise logged."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def when_nobody_asks() -> None:
    # A failure nobody retrieves is still not dropped: when the task is garbage-collected
    # (or at interpreter exit) the exception is logged, with its traceback, on the
    # "threadwise" logger.
    handler = KeepRecords()
    logger = logging.getLogger("threadwise")
    logger.addHandler(handler)
    try:
        task = tw.spawn(load_settings, "forgotten.toml")
        task.join()
        del task
        gc.collect()
    finally:
        logger.removeHandler(handler)
    for record in handler.records:
        assert record.exc_info is not None
        print(f"  never retrieved, so logged: {record.getMessage()!r}")
        print(f"    with the traceback of {record.exc_info[1]!r}")


def main() -> None:
    the_pitfall()
    with_result()
    with_a_group()
    when_nobody_asks()


if __name__ == "__main__":
    main()
