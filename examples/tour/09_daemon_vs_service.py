"""Daemon threads vs a graceful stop: background work that ends cleanly instead of being killed.

Run it with ``python examples/tour/09_daemon_vs_service.py`` (about half a second).

A daemon thread does not keep the program alive - because the interpreter simply stops it at
exit, wherever it is: half-way through writing a record, holding a lock, before a flush. A
non-daemon thread that loops forever keeps the program from exiting at all.

threadwise's answer is a stop you can ask for. ``tw.Service`` runs a job every ``interval``
seconds and stops *between* iterations - when you call ``stop()`` or when the program exits -
so the record being written is always finished. The lesson also stops a background writer
task in a ``TaskGroup`` two ways: by setting a ``tw.Event`` it checks between records, and by
cancelling the group, which interrupts its cancellable wait at once.

The daemon-thread and service halves run in child interpreters: they need a real exit.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import threadwise as tw

DAEMON_CHILD = """
import sys, threading, time

started_third_record = threading.Event()

def write_records(path):
    with open(path, "w") as log:
        for n in range(1, 1000):
            log.write(f"record {n}: begin ... ")
            log.flush()
            if n == 3:
                started_third_record.set()
            time.sleep(0.1)  # the second half of the record comes later
            log.write("end\\n")
            log.flush()

threading.Thread(target=write_records, args=(sys.argv[1],), daemon=True).start()
started_third_record.wait()
# The main thread returns here; the interpreter exits and kills the daemon thread mid-record.
"""

SERVICE_CHILD = """
import atexit, sys, time
import threadwise as tw

log = open(sys.argv[1], "w")
atexit.register(log.close)  # atexit runs after the services have stopped
second_record_started = tw.Event()
count = 0

def write_record():
    # One iteration writes one record, in two halves 50 ms apart.
    global count
    count += 1
    log.write(f"record {count}: begin ... ")
    log.flush()
    if count == 2:
        second_record_started.set()
    time.sleep(0.05)  # not even cancellable: the service waits for the iteration anyway
    log.write("end\\n")
    log.flush()

tw.Service(write_record, interval=0.01, name="record-writer").start()
second_record_started.wait()
# The main thread returns here, half-way through record 2: at exit the service is stopped
# between iterations, so record 2 is finished first.
"""

SPAWN_CHILD = """
import sys
import threadwise as tw

def write_records(path):
    with open(path, "w") as log:
        for n in range(1, 4):
            log.write(f"record {n}: begin ... ")
            tw.sleep(0.02)
            log.write("end\\n")

tw.spawn(write_records, sys.argv[1])
# The main thread returns at once, but threadwise waits for the unfinished task at exit.
"""


def run_child(code: str, path: Path) -> list[str]:
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=30)
    return path.read_text().splitlines()


def writer(path: Path, stop: tw.Event, written: tw.Semaphore) -> int:
    """Write complete records until asked to stop; always close the file properly."""
    records = 0
    with path.open("w") as log:
        try:
            while not stop.is_set():
                records += 1
                log.write(f"record {records}: begin ... end\n")
                log.flush()
                written.release()
                # Wait for the next round - or for `stop`. A cancellation of the group also
                # ends this wait at once (it raises tw.Cancelled), so stopping never waits for
                # a whole interval.
                stop.wait(timeout=0.01)
        finally:
            log.write("closed cleanly\n")
    return records


def describe(lines: list[str]) -> str:
    complete = sum(1 for line in lines if line.endswith("end"))
    return f"{complete} complete records, last line {lines[-1]!r}"


def stop_with_event(path: Path) -> None:
    # The writer checks the event between records: setting it ends the loop after the
    # current record, and the pending wait returns at once.
    stop = tw.Event(name="stop writer")
    written = tw.Semaphore(0, name="records written")
    with tw.TaskGroup(name="background") as group:
        task = group.spawn(writer, path, stop, written)
        for _ in range(3):
            written.acquire()  # let it write at least three records first
        stop.set()
    lines = path.read_text().splitlines()
    print(f"stopped with a tw.Event:         {describe(lines)}")
    print(f"  the writer returned {task.result()} records, state {task.state.name}")


def stop_by_cancelling(path: Path) -> None:
    # The same writer, and nobody sets its event: cancelling the group interrupts its
    # cancellable wait with tw.Cancelled, its `finally` closes the file, and the group
    # (which was the one cancelled) exits without an error.
    written = tw.Semaphore(0, name="records written")
    with tw.TaskGroup(name="background") as group:
        task = group.spawn(writer, path, tw.Event(name="never set"), written)
        for _ in range(3):
            written.acquire()
        group.cancel("shutting down")
    lines = path.read_text().splitlines()
    print(f"stopped by cancelling its group: {describe(lines)}")
    print(f"  the writer's state: {task.state.name}; the group exited without an error")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        lines = run_child(DAEMON_CHILD, folder / "daemon.log")
        print(f"daemon thread, killed at exit:   {describe(lines)}")
        lines = run_child(SERVICE_CHILD, folder / "service.log")
        print(f"tw.Service, stopped at exit:     {describe(lines)}")
        lines = run_child(SPAWN_CHILD, folder / "spawned.log")
        print(f"tw.spawn task, waited for:       {describe(lines)}")
        stop_with_event(folder / "event.log")
        stop_by_cancelling(folder / "cancel.log")


if __name__ == "__main__":
    main()
